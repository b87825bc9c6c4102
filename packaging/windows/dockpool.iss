; Inno Setup script for Dockpool: a per-user install, no administrator rights needed.
; Build the bundle first (make package, or the Windows workflow), then:
;   iscc packaging\windows\dockpool.iss
; The installer lands in dist\Dockpool-<version>-setup.exe.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6B0C5D1E-4F7A-4C8B-9E2D-D0C4B7A1F3E9}
AppName=Dockpool
AppVersion={#AppVersion}
AppPublisher=Dockpool
; Shown in Explorer's Details tab of the setup file and checked on upgrades (0.0.0.0 without it).
VersionInfoVersion={#AppVersion}.0
VersionInfoProductVersion={#AppVersion}
VersionInfoDescription=Dockpool setup
VersionInfoCompany=Dockpool
DefaultDirName={autopf}\Dockpool
DefaultGroupName=Dockpool
DisableProgramGroupPage=yes
; Per-user by default ({autopf} is then %LOCALAPPDATA%\Programs); an admin may choose all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=Dockpool-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\dockpool.ico
UninstallDisplayIcon={app}\Dockpool.exe
UninstallDisplayName=Dockpool
ChangesAssociations=yes
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\..\dist\Dockpool\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Dockpool"; Filename: "{app}\Dockpool.exe"; WorkingDir: "{userdocs}"
Name: "{autodesktop}\Dockpool"; Filename: "{app}\Dockpool.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; Windows associates files by their last extension only, so a .dockpool.toml project is a
; .toml file to the shell: Dockpool registers itself in .toml's "Open with" list. It never
; makes itself the default: since Windows 8 only the user can choose a default (Open with >
; Choose another app), and taking .toml would also take every pyproject.toml.
Root: HKA; Subkey: "Software\Classes\Dockpool.Project"; ValueType: string; ValueName: ""; ValueData: "Dockpool project"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Dockpool.Project\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\Dockpool.exe,0"
Root: HKA; Subkey: "Software\Classes\Dockpool.Project\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\Dockpool.exe"" ""%1"""
Root: HKA; Subkey: "Software\Classes\.toml\OpenWithProgids"; ValueType: string; ValueName: "Dockpool.Project"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\Applications\Dockpool.exe\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\Dockpool.exe"" ""%1"""; Flags: uninsdeletekey

[Run]
Filename: "{app}\Dockpool.exe"; Description: "{cm:LaunchProgram,Dockpool}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what Dockpool itself wrote (Inno Setup removes the files it installed): its log
; (%LOCALAPPDATA%\Dockpool\Dockpool), its layer cache and run logs (%LOCALAPPDATA%\Dockpool\cache)
; and its crash autosaves (%APPDATA%\Dockpool\Dockpool). Never {app} as a whole: a user may
; have put files there. The window's settings are in the registry (see [Code]). Project
; files are the user's and stay.
Type: filesandordirs; Name: "{localappdata}\Dockpool\Dockpool"
Type: filesandordirs; Name: "{localappdata}\Dockpool\cache"
Type: dirifempty; Name: "{localappdata}\Dockpool"
Type: filesandordirs; Name: "{userappdata}\Dockpool\Dockpool"
Type: dirifempty; Name: "{userappdata}\Dockpool"

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RegDeleteKeyIncludingSubkeys(HKEY_CURRENT_USER, 'Software\Dockpool');
end;
