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

/** Reads waiting for the stream's next state (see [`nextConnection`]). */
const waiting = new Set<() => void>();

/** The stream's new state, from its `team-connection` event. Returns whether the server just
 * came back (it was offline before), when what the window shows must be read again. */
export function setConnection(c: TeamConnection): boolean {
  const back = c.online && workspace.connection !== null && !workspace.connection.online;
  workspace.connection = c;
  for (const wake of [...waiting]) wake();
  return back;
}

/** Resolves at the stream's next state, or after `ms`. A read the server did not answer may
 * come just before the stream notices the server went away; it waits for the stream to say so
 * before it decides between what was read before and an error. */
export function nextConnection(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      waiting.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    waiting.add(wake);
  });
}

/** The role's word for the badge ("admin", "member", "auditor"). */
export function roleLabel(role: string): string {
  return role === "admin" ? "Admin" : role === "auditor" ? "Auditor (read only)" : "Member";
}
