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
Name: "tomldefault"; Description: "Open every .toml file with Dockpool by default"; GroupDescription: "File associations:"; Flags: unchecked

[Files]
Source: "..\..\dist\Dockpool\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Dockpool"; Filename: "{app}\Dockpool.exe"; WorkingDir: "{userdocs}"
Name: "{autodesktop}\Dockpool"; Filename: "{app}\Dockpool.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; Windows associates files by their last extension only, so a .dockpool.toml project is a
; .toml file to the shell: Dockpool registers itself in .toml's "Open with" list, and
; becomes the default for .toml only when the user ticks the task above.
Root: HKA; Subkey: "Software\Classes\Dockpool.Project"; ValueType: string; ValueName: ""; ValueData: "Dockpool project"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Dockpool.Project\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\Dockpool.exe,0"
Root: HKA; Subkey: "Software\Classes\Dockpool.Project\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\Dockpool.exe"" ""%1"""
Root: HKA; Subkey: "Software\Classes\.toml\OpenWithProgids"; ValueType: string; ValueName: "Dockpool.Project"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.toml"; ValueType: string; ValueName: ""; ValueData: "Dockpool.Project"; Tasks: tomldefault; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\Applications\Dockpool.exe\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\Dockpool.exe"" ""%1"""; Flags: uninsdeletekey

[Run]
Filename: "{app}\Dockpool.exe"; Description: "{cm:LaunchProgram,Dockpool}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Everything the app wrote beside itself; the window's settings (QSettings, in the
; registry) and its log and autosave folder. Project files are the user's and stay.
Type: filesandordirs; Name: "{app}"
Type: filesandordirs; Name: "{localappdata}\Dockpool\Dockpool"

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RegDeleteKeyIncludingSubkeys(HKEY_CURRENT_USER, 'Software\Dockpool');
end;
