//! The OS keychain behind Mandate's `Keychain` trait.
//!
//! Mandate keeps its issuer signing key, agent private keys and connection credentials here and
//! nowhere else. This crate adapts keyring 4 (keyring-core plus one store crate per platform):
//! the Secret Service over libdbus on Linux, the login Keychain on macOS, the Credential Manager
//! on Windows. It maps every failure to a [`KeychainError`] whose message names the fix.
//!
//! A Secret Service that dies and is started again (gnome-keyring-daemon has a known crash, and
//! a desktop session restarts it) is reconnected: an operation that fails on the old connection
//! is tried again on a new one, so a long-running `mandate serve` or app window does not
//! keep failing until it is restarted. Opening waits a moment for a service that is
//! restarting, and without a display (where no unlock prompt can be shown) a "locked" answer
//! from a daemon that has just started is asked again, briefly, until it has unlocked.
//!
//! What it is not: a fallback. When no keychain is reachable it fails; it never keeps secrets in
//! memory or in a file instead.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keyring_core::{Entry, Error as KrError};
use mandate_core::secret::{Keychain, KeychainError, SecretRef, Sensitive};

#[cfg(target_os = "linux")]
const BACKEND: &str = "Secret Service (D-Bus)";
#[cfg(target_os = "macos")]
const BACKEND: &str = "macOS Keychain";
#[cfg(target_os = "windows")]
const BACKEND: &str = "Windows Credential Manager";
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
const BACKEND: &str = "no supported keychain";

#[cfg(target_os = "linux")]
const UNAVAILABLE_FIX: &str = "Start a desktop session, or run a Secret Service such as \
    gnome-keyring (`gnome-keyring-daemon --unlock --components=secrets`) with \
    DBUS_SESSION_BUS_ADDRESS set";
#[cfg(not(target_os = "linux"))]
const UNAVAILABLE_FIX: &str = "Make sure you are logged in to a desktop session";

#[cfg(target_os = "linux")]
const LOCKED_FIX: &str = "unlock your login keyring (log in to the desktop, or open \
    'Passwords and Keys' / run `gnome-keyring-daemon --unlock`), then try again";
#[cfg(not(target_os = "linux"))]
const LOCKED_FIX: &str = "unlock your keychain, then try again";

/// The OS keychain, under one service name.
pub struct OsKeychain {
    service: String,
    /// The open store (on Linux, one Secret Service connection and session); replaced by
    /// [`OsKeychain::reconnect`] when the service behind it went away.
    store: RwLock<Arc<keyring_core::CredentialStore>>,
}

/// How long an operation waits for a Secret Service that went away to come back (a desktop
/// session restarts a crashed daemon in well under a second) before it reports it unreachable.
const RECONNECT_WITHIN: Duration = Duration::from_secs(2);

/// How long opening waits for a Secret Service that is restarting.
const OPEN_WAIT: Duration = Duration::from_millis(1500);

/// Tries of an operation on a new connection: a daemon that has just started may answer
/// "locked" (or not at all) for a moment, until it has unlocked its keyring.
const TRIES_AFTER_RECONNECT: u32 = 3;

/// Whether a failure may be the connection's rather than the keychain's answer: worth one more
/// try on a new connection. "No such item", a locked keychain (retrying would prompt again) and
/// a stored value in the wrong format are answers, not connection failures.
fn worth_reconnecting(e: &KrError) -> bool {
    matches!(e, KrError::PlatformFailure(_))
        || matches!(e, KrError::NoStorageAccess(_)) && no_prompt_possible()
}

/// No graphical session: an unlock prompt cannot be shown, so "locked" can only be a keyring
/// that is not unlocked yet (a daemon that has just restarted unlocks it a moment after it
/// answers). Asking again then prompts nobody. With a display, "locked" is the person's answer
/// to a prompt and is never retried.
fn no_prompt_possible() -> bool {
    cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
}

impl fmt::Debug for OsKeychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsKeychain")
            .field("service", &self.service)
            .field("backend", &BACKEND)
            .finish()
    }
}

fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, KrError> {
    #[cfg(target_os = "linux")]
    {
        let s: Arc<keyring_core::CredentialStore> =
            dbus_secret_service_keyring_store::Store::new()?;
        Ok(s)
    }
    #[cfg(target_os = "macos")]
    {
        let s: Arc<keyring_core::CredentialStore> =
            apple_native_keyring_store::keychain::Store::new()?;
        Ok(s)
    }
    #[cfg(target_os = "windows")]
    {
        let s: Arc<keyring_core::CredentialStore> = windows_native_keyring_store::Store::new()?;
        Ok(s)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        Err(KrError::NotSupportedByStore("this operating system".into()))
    }
}

/// Describe a keyring error without any secret material (keyring errors carry none, but
/// `BadEncoding`/`BadDataFormat` hold raw bytes, which we never print).
fn describe(e: &KrError) -> String {
    match e {
        KrError::PlatformFailure(inner) | KrError::NoStorageAccess(inner) => inner.to_string(),
        KrError::BadEncoding(_) => "the stored value is not valid UTF-8".into(),
        KrError::BadDataFormat(_, _) => "the stored value has an unexpected format".into(),
        KrError::NoEntry => "no such item".into(),
        KrError::Ambiguous(v) => format!("{} items match", v.len()),
        other => other.to_string(),
    }
}

fn map_err(e: KrError) -> KeychainError {
    let detail = describe(&e);
    match e {
        KrError::NoStorageAccess(_) => KeychainError::Locked {
            detail,
            fix: LOCKED_FIX.into(),
        },
        KrError::PlatformFailure(inner) if service_unreachable(inner.as_ref()) => {
            KeychainError::Unavailable {
                detail,
                fix: UNAVAILABLE_FIX.into(),
            }
        }
        _ => KeychainError::Failed(detail),
    }
}

/// D-Bus errors that mean "nobody answers for the Secret Service", as opposed to a refusal.
#[cfg(target_os = "linux")]
const UNREACHABLE_DBUS_ERRORS: &[&str] = &[
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Timeout",
    "org.freedesktop.DBus.Error.TimedOut",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.NoNetwork",
    "org.freedesktop.DBus.Error.FileNotFound",
    "org.freedesktop.DBus.Error.BadAddress",
];

/// Whether a store failure means the Secret Service is gone (it was reachable at `open`, then
/// stopped answering). Decided on the D-Bus error name, never on message text.
#[cfg(target_os = "linux")]
fn service_unreachable(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    use dbus_secret_service::Error as SsError;
    match inner.downcast_ref::<SsError>() {
        Some(SsError::Unavailable) => true,
        Some(SsError::Dbus(e)) => e.name().is_some_and(|name| {
            UNREACHABLE_DBUS_ERRORS.contains(&name)
                || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        }),
        _ => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn service_unreachable(_: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    false
}

impl OsKeychain {
    /// Connect to the OS keychain. On Linux this opens the Secret Service session at once, so a
    /// missing session bus or Secret Service fails here, fast, with
    /// [`KeychainError::Unavailable`]; a service that goes away later fails the same way.
    pub fn open(service: &str) -> Result<Self, KeychainError> {
        if service.is_empty() {
            return Err(KeychainError::Failed(
                "the keychain service name is empty".into(),
            ));
        }
        // A Secret Service restarting at this very moment (its daemon crashed and the session
        // starts another) is waited for briefly; one that is not there fails fast after that.
        let started = Instant::now();
        let store = loop {
            match platform_store() {
                Ok(s) => break s,
                Err(e)
                    if started.elapsed() < OPEN_WAIT
                        && matches!(&e, KrError::PlatformFailure(inner)
                            | KrError::NoStorageAccess(inner) if service_unreachable(inner.as_ref())) =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(KeychainError::Unavailable {
                        detail: describe(&e),
                        fix: UNAVAILABLE_FIX.into(),
                    });
                }
            }
        };
        Ok(OsKeychain {
            service: service.to_string(),
            store: RwLock::new(store),
        })
    }

    fn store(&self) -> Arc<keyring_core::CredentialStore> {
        // A poisoned lock still holds a usable store: no operation panics while replacing it.
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Open a new connection to the keychain in place of `stale` (unless another thread already
    /// has), waiting up to [`RECONNECT_WITHIN`] for the service to come back.
    fn reconnect(&self, stale: &Arc<keyring_core::CredentialStore>) -> Result<(), KrError> {
        let started = Instant::now();
        let fresh = loop {
            match platform_store() {
                Ok(s) => break s,
                Err(e) if started.elapsed() >= RECONNECT_WITHIN => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut current = self
            .store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::ptr_eq(&current, stale) {
            *current = fresh;
        }
        Ok(())
    }

    /// `op` on the item `what`; if it fails the way a dead connection does, once more on a
    /// new connection. Every operation here is safe to repeat (set replaces, delete of a
    /// missing item is success, get reads).
    fn with_entry<T>(
        &self,
        what: &SecretRef,
        op: impl Fn(&Entry) -> Result<T, KrError>,
    ) -> Result<T, KrError> {
        let store = self.store();
        let first = store
            .build(&self.service, &what.account, None)
            .and_then(|e| op(&e));
        match first {
            Err(e) if worth_reconnecting(&e) => {
                tracing::warn!(
                    error = %describe(&e),
                    "a keychain call failed; reconnecting to the keychain and trying once more"
                );
                if self.reconnect(&store).is_err() {
                    return Err(e);
                }
                let mut tries = 0;
                loop {
                    tries += 1;
                    let again = self
                        .store()
                        .build(&self.service, &what.account, None)
                        .and_then(|e| op(&e));
                    match again {
                        Err(e) if tries < TRIES_AFTER_RECONNECT && worth_reconnecting(&e) => {
                            std::thread::sleep(Duration::from_millis(300));
                            let current = self.store();
                            let _ = self.reconnect(&current);
                        }
                        other => return other,
                    }
                }
            }
            other => other,
        }
    }

    /// The service name items are stored under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// A real round trip to the keychain, for status screens: `Ok` means reachable and
    /// unlocked.
    ///
    /// It reads a probe item (account [`STATUS_PROBE_ACCOUNT`], a fixed value that is not a
    /// secret) and writes it first if it is missing. Reading an item that does not exist would
    /// not do: the Secret Service answers "no such item" even when the collection is locked.
    pub fn status(&self) -> Result<(), KeychainError> {
        let probe = SecretRef {
            account: STATUS_PROBE_ACCOUNT.into(),
        };
        if self.get(&probe)?.is_none() {
            self.set(&probe, &Sensitive::new(STATUS_PROBE_VALUE.to_string()))?;
        }
        Ok(())
    }
}

/// The account [`OsKeychain::status`] keeps its probe item under, beside the real items.
pub const STATUS_PROBE_ACCOUNT: &str = "status-probe";
const STATUS_PROBE_VALUE: &str = "mandate keychain status probe (not a secret)";

impl Keychain for OsKeychain {
    fn set(&self, what: &SecretRef, secret: &Sensitive<String>) -> Result<(), KeychainError> {
        self.with_entry(what, |e| e.set_password(secret.expose()))
            .map_err(map_err)
    }

    fn get(&self, what: &SecretRef) -> Result<Option<Sensitive<String>>, KeychainError> {
        match self.with_entry(what, Entry::get_password) {
            Ok(p) => Ok(Some(Sensitive::new(p))),
            Err(KrError::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn delete(&self, what: &SecretRef) -> Result<(), KeychainError> {
        match self.with_entry(what, Entry::delete_credential) {
            Ok(()) | Err(KrError::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    fn describe(&self) -> String {
        BACKEND.to_string()
    }
}
