//! Who is using the app: the person every change made in the window names. Asked at first run
//! (with the organisation's name for reports), changeable in Settings, remembered per OS login
//! in the data folder (`mandate_core::people`), so the CLI of the same login agrees.

use mandate_core::model::Member;
use mandate_core::people::{self, PersonChoice};
use mandate_core::{ErrorReport, Mandate};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::AppState;

/// Who the window's changes name, if anyone yet.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct PersonStatus {
    /// The OS login the choice is remembered for.
    pub os_user: Option<String>,
    /// The member changes name; null until the person says who they are.
    pub member: Option<Member>,
    /// Every team member, to choose from.
    pub members: Vec<Member>,
    /// The organisation name on reports, if set.
    pub organisation: Option<String>,
}

fn status(m: &Mandate) -> mandate_core::Result<PersonStatus> {
    let members = m.list_members()?;
    let member = match m.person()? {
        Some(a) => members.iter().find(|x| x.id.as_str() == a.id).cloned(),
        None => None,
    };
    Ok(PersonStatus {
        os_user: people::current_login(),
        member,
        members,
        organisation: m.organisation_name()?,
    })
}

#[tauri::command]
#[specta::specta]
pub async fn current_person(state: State<'_, AppState>) -> Result<PersonStatus, ErrorReport> {
    blocking(&state, status).await
}

/// The person says who they are: an existing member's name, or a new member with an optional
/// email; with `organisation`, also the name on reports (set as them).
#[tauri::command]
#[specta::specta]
pub async fn choose_person(
    state: State<'_, AppState>,
    member: String,
    email: Option<String>,
    organisation: Option<String>,
) -> Result<PersonStatus, ErrorReport> {
    blocking(&state, move |m| {
        let login = people::current_login().unwrap_or_default();
        m.choose_person(
            &login,
            &PersonChoice {
                member,
                email: email.filter(|e| !e.trim().is_empty()),
            },
        )?;
        if let Some(org) = organisation.filter(|o| !o.trim().is_empty()) {
            m.set_organisation_name(&org)?;
        }
        status(m)
    })
    .await
}
