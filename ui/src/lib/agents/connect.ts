// "Connect this agent": copy-ready lines that run a program as this agent, with its real name
// filled in, for the three ways agents usually run (unit-tested in connect.test.ts).
//
// Every way goes through `mandate exec`, which signs with the agent's key from this machine's
// keychain, so it applies only when that key is here. With the app closed, the endpoint is the
// background service (`mandate service install`).

export interface ConnectWay {
  id: "sdk" | "timer" | "cron" | "file";
  title: string;
  /** One or two sentences; `code` spans render as code. */
  explain: string;
  text: string;
}

/** The lines for `agent` (its name is also its OAuth client_id). */
export function connectWays(agent: string): ConnectWay[] {
  return [
    {
      id: "sdk",
      title: "A Python or Node program that uses an SDK",
      explain:
        "The program's SDK finds the broker's URL and a fresh Mandate token in the variables it already reads " +
        "(`OPENAI_BASE_URL`, `GITHUB_TOKEN`, …), never the real key. Replace `main.py` with your program.",
      text: [`mandate exec ${agent} -- python3 main.py`, `mandate exec ${agent} -- node main.mjs`].join("\n"),
    },
    {
      id: "timer",
      title: "A systemd timer (Linux)",
      explain:
        "Runs the job on a schedule in your user session, where the keychain is. Write the two files, " +
        "then enable the timer once. systemd needs the full path of `mandate`: see `command -v mandate`.",
      text: [
        `# ~/.config/systemd/user/${agent}.service`,
        "[Unit]",
        `Description=${agent}, running as itself (Mandate)`,
        "",
        "[Service]",
        "Type=oneshot",
        `ExecStart=mandate exec ${agent} -- python3 %h/${agent}/main.py`,
        "",
        `# ~/.config/systemd/user/${agent}.timer`,
        "[Timer]",
        "OnCalendar=daily",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
        "# once:",
        `systemctl --user daemon-reload && systemctl --user enable --now ${agent}.timer`,
      ].join("\n"),
    },
    {
      id: "cron",
      title: "A cron job",
      explain:
        "cron jobs do not see your desktop session, where the keychain is: the variable points them at it, " +
        "so the job runs while you are logged in. cron also needs the full path of `mandate`.",
      text: [
        "# crontab -e  (every day at 06:00)",
        `0 6 * * * DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$(id -u)/bus mandate exec ${agent} -- python3 $HOME/${agent}/main.py`,
      ].join("\n"),
    },
    {
      id: "file",
      title: "A program that only reads a token file",
      explain:
        "`mandate exec` keeps a fresh token in the file named by `MANDATE_TOKEN_FILE` (mode 0600, rewritten " +
        "before each token expires, deleted when the program exits). Read it before each call.",
      text: [
        `mandate exec ${agent} -- ./main`,
        "",
        "# in the program, before each call:",
        'TOKEN="$(cat "$MANDATE_TOKEN_FILE")"                     # shell',
        'token = open(os.environ["MANDATE_TOKEN_FILE"]).read()   # Python',
      ].join("\n"),
    },
  ];
}

/** Why the lines do not apply to this agent, or null when they do. */
export function connectBlocker(agent: {
  status: string;
  dpop_required: boolean;
  keys: { origin: string; expires_at: string | null }[];
}, now: Date = new Date()): string | null {
  if (agent.status === "revoked") return "It is revoked: it can never get a token again.";
  const here = agent.keys.some(
    (k) => k.origin === "keychain" && (k.expires_at === null || new Date(k.expires_at) > now),
  );
  if (!here)
    return "Its private key is not in this machine's keychain, so `mandate exec` cannot sign for it here. " +
      "The program authenticates itself with any OAuth library (`private_key_jwt` with its own key), " +
      "or Rotate key makes a key here.";
  if (agent.dpop_required)
    return "It must bind its tokens with DPoP, which a program started by `mandate exec` cannot do: " +
      "have the program get its own DPoP tokens.";
  return null;
}
