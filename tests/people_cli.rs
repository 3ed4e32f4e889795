//! Every change names a person, through the real `mandate` binary (issue 17 §3 and §4): the
//! OS login stated as such when no member is chosen, `mandate member use`, `--as` and
//! `MANDATE_ACTOR` (an unknown one refused with the fix), the organisation name on PDF exports,
//! and sub-agents that registration and edits keep within their parent.

use serde_json::Value;

use crate::fixture::Env;

/// As the OS user `login`.
fn as_login(login: &str) -> [(&'static str, String); 3] {
    [
        ("USER", login.to_string()),
        ("LOGNAME", login.to_string()),
        ("USERNAME", login.to_string()),
    ]
}

fn run_as(env: &Env, login: &str, args: &[&str]) -> crate::fixture::Run {
    let vars = as_login(login);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.run_with_env(args, &vars)
}

/// `(action, actor kind, actor name)` of every event, oldest first, read with sqlite3.
fn actors(env: &Env) -> Vec<(String, String, String)> {
    let o = crate::fixture::sqlite3(env.db_path())
        .arg(
            "SELECT json_object('a', action, 'k', CAST(body AS TEXT) ->> '$.actor.kind', \
             'n', CAST(body AS TEXT) ->> '$.actor.name') FROM audit_events ORDER BY seq",
        )
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["a"].as_str().unwrap().into(),
                v["k"].as_str().unwrap().into(),
                v["n"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn last(env: &Env) -> (String, String, String) {
    actors(env).pop().unwrap()
}

/// Every change used to be recorded as "the app"; now each names who made it.
#[test]
fn without_a_member_the_cli_names_the_os_login_and_says_so() {
    let env = Env::new();
    let out = run_as(
        &env,
        "ann",
        &["member", "add", "ann", "--email", "ann@example.com"],
    )
    .ok();
    assert!(
        out.stdout.contains("mandate member use ann"),
        "{}",
        out.stdout
    );
    assert_eq!(
        last(&env),
        ("member.added".into(), "os_user".into(), "ann".into())
    );
    let who = run_as(&env, "ann", &["member", "whoami"]).ok().stdout;
    assert!(
        who.contains("OS user ann (no member chosen)") && who.contains("mandate member use"),
        "{who}"
    );
    // Remembered for this login: later changes name the member.
    run_as(&env, "ann", &["member", "use", "ann"]).ok();
    assert_eq!(
        last(&env),
        ("person.chosen".into(), "member".into(), "ann".into())
    );
    run_as(&env, "ann", &["member", "add", "bob"]).ok();
    assert_eq!(
        last(&env),
        ("member.added".into(), "member".into(), "ann".into())
    );
    let who = run_as(&env, "ann", &["member", "whoami", "--json"])
        .ok()
        .json();
    assert_eq!(who["actor"]["kind"], "member");
    assert_eq!(who["actor"]["name"], "ann");
    // Another login on the same data folder is not ann.
    run_as(
        &env,
        "bob",
        &["connection", "add", "github", "--preset", "github"],
    )
    .ok();
    assert!(
        actors(&env).contains(&("connection.added".into(), "os_user".into(), "bob".into())),
        "{:?}",
        actors(&env)
    );
    // --as and MANDATE_ACTOR name a member for one command, over the remembered one.
    run_as(&env, "ann", &["--as", "bob", "member", "add", "carol"]).ok();
    assert_eq!(
        last(&env),
        ("member.added".into(), "member".into(), "bob".into())
    );
    let vars = as_login("ann");
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("MANDATE_ACTOR", "carol"));
    env.run_with_env(&["member", "add", "dave"], &vars).ok();
    assert_eq!(
        last(&env),
        ("member.added".into(), "member".into(), "carol".into())
    );
}

#[test]
fn an_unknown_member_in_as_or_mandate_actor_is_refused_with_the_fix() {
    let env = Env::new();
    env.seed();
    let before = env.snapshot();
    env.run(&["--as", "ghost", "member", "add", "erin"])
        .fails(
            4,
            "no team member named 'ghost' exists (named by --as or MANDATE_ACTOR)",
        )
        .fails(4, "mandate member add ghost");
    env.run_with_env(&["member", "add", "erin"], &[("MANDATE_ACTOR", "ghost")])
        .fails(4, "named by --as or MANDATE_ACTOR");
    env.run(&["member", "use", "ghost"])
        .fails(4, "no team member named 'ghost'");
    assert_eq!(env.snapshot(), before, "nothing was written");
}

#[test]
fn pdf_exports_use_the_organisation_name_set_once() {
    let env = Env::new();
    env.seed();
    let out = env.dir.path().join("report.pdf");
    let r = env
        .run(&[
            "audit",
            "export",
            "--format",
            "pdf",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert!(
        r["organisation"]
            .as_str()
            .unwrap()
            .starts_with("Mandate installation "),
        "{r}"
    );
    env.run(&["org", "Example Robotics Ltd"]).ok();
    assert_eq!(env.run(&["org"]).ok().stdout.trim(), "Example Robotics Ltd");
    std::fs::remove_file(&out).unwrap();
    let r = env
        .run(&[
            "audit",
            "export",
            "--format",
            "pdf",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(r["organisation"], "Example Robotics Ltd");
    assert_eq!(
        last(&env).0,
        "settings.organisation_set",
        "the change is audited"
    );
}

/// Seen in a new user's walk: `agent add --parent` with a scope its parent lacked succeeded.
#[test]
fn a_sub_agent_beyond_its_parent_is_refused_at_add_and_edit() {
    let env = Env::new();
    env.seed();
    let before = env.snapshot();
    let add = |scope: &str| {
        env.run(&[
            "agent",
            "add",
            "report-helper",
            "--owner",
            "founder",
            "--purpose",
            "helps the billing report",
            "--parent",
            "billing-report-agent",
            "--scope",
            scope,
        ])
    };
    add("github:issues.write")
        .fails(3, "its parent agent 'billing-report-agent' does not")
        .fails(
            3,
            "Grant github:issues.write to 'billing-report-agent' first",
        );
    assert_eq!(env.snapshot(), before, "nothing was written");
    add("github:repo.read").ok();
    env.run(&[
        "agent",
        "edit",
        "report-helper",
        "--add-scope",
        "github:issues.write",
    ])
    .fails(3, "a sub-agent never holds more than its parent");
    // Widening the parent first lets the child have it; narrowing the parent takes it back.
    env.run(&[
        "agent",
        "edit",
        "billing-report-agent",
        "--add-scope",
        "github:issues.write",
    ])
    .ok();
    env.run(&[
        "agent",
        "edit",
        "report-helper",
        "--add-scope",
        "github:issues.write",
    ])
    .ok();
    env.run(&[
        "agent",
        "edit",
        "billing-report-agent",
        "--remove-scope",
        "github:issues.write",
    ])
    .ok();
    let child = env
        .run(&["agent", "show", "report-helper", "--json"])
        .ok()
        .json();
    assert_eq!(child["scopes"], serde_json::json!(["github:repo.read"]));
    assert_eq!(
        child["parents"],
        serde_json::json!(["billing-report-agent"])
    );
}
