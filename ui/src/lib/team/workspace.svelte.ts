// Which registry the window shows: this computer's, or the team server's this installation
// joined. The choice is remembered; a computer that joined a team opens in its workspace.
// `version` moves whenever what the window shows must be read again (a team event, a switch,
// the server coming back), and the screens are keyed on it.
import type { TeamConnection_Serialize, TeamIdentity_Serialize } from "../backend/bindings";

export type Mode = "local" | "team";
export type TeamIdentity = TeamIdentity_Serialize;
export type TeamConnection = TeamConnection_Serialize;

const KEY = "mandate.workspace";

export const workspace = $state({
  mode: "local" as Mode,
  identity: null as TeamIdentity | null,
  connection: null as TeamConnection | null,
  version: 0,
});

/** Whether the screens read and change the team server's registry. */
export function inTeam(): boolean {
  return workspace.mode === "team" && workspace.identity !== null;
}

/** The workspace to open in: the remembered one, else the team's when joined. */
export function initialMode(identity: TeamIdentity | null, remembered: string | null): Mode {
  if (!identity) return "local";
  return remembered === "local" ? "local" : "team";
}

export function setIdentity(identity: TeamIdentity | null) {
  workspace.identity = identity;
  workspace.mode = initialMode(identity, localStorage.getItem(KEY));
}

export function switchTo(mode: Mode) {
  if (mode === "team" && !workspace.identity) return;
  workspace.mode = mode;
  localStorage.setItem(KEY, mode);
  workspace.version++;
}

/** Reload what the screens show. */
export function refresh() {
  workspace.version++;
}

/** The role's word for the badge ("admin", "member", "auditor"). */
export function roleLabel(role: string): string {
  return role === "admin" ? "Admin" : role === "auditor" ? "Auditor (read only)" : "Member";
}
