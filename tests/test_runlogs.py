"""Run log files: one per image, under a name every file system takes."""

from __future__ import annotations

from gui.pipeline.runlogs import file_name


def test_names_windows_reserves_for_devices_get_a_suffix() -> None:
    """Windows 10 opens 'aux.log' or 'con.log' as a device (AUX, CON), whatever the
    extension: the log of an image named aux (a valid repository name) would go there.
    Such names get the hash suffix that names with / or : get."""
    for name in ("aux", "con", "nul", "prn", "com0", "com1", "lpt9", "AUX"):
        stem = file_name(name).split(".")[0]
        assert stem.lower() != name.lower() and stem.lower().startswith(name.lower() + "-"), file_name(name)
    assert file_name("auxiliary") == "auxiliary.log" and file_name("com10") == "com10.log"
    assert file_name("api") == "api.log"
    assert file_name("team/api:1.0").startswith("team_api_1.0-")
