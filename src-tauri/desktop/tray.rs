//! The tray icon: whether the endpoint runs and who serves it (a line of text, the tooltip, and
//! a dimmed icon while it does not run), with Open, Pause/Resume endpoint (only for the app's
//! own endpoint: the background service's is not the app's to pause) and Quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

use crate::AppState;
use crate::endpoint::{self, EndpointState, EndpointStatus, ServedByView};

const TRAY_ID: &str = "mandate";
const ICON: &[u8] = include_bytes!("../../icons/32x32.png");

/// The one line the tray shows about the endpoint.
pub fn describe(s: &EndpointStatus) -> String {
    match (s.state, s.served_by) {
        (EndpointState::Running, ServedByView::Service) => format!(
            "Endpoint on 127.0.0.1:{}, served by the background service",
            s.port
        ),
        (EndpointState::Running, ServedByView::Process) => {
            format!("Endpoint on 127.0.0.1:{}, served by mandate serve", s.port)
        }
        _ => describe_own(s),
    }
}

fn describe_own(s: &EndpointStatus) -> String {
    match s.state {
        EndpointState::Running => format!("Endpoint running on 127.0.0.1:{}", s.port),
        EndpointState::Starting => format!("Endpoint starting on 127.0.0.1:{}", s.port),
        EndpointState::Paused => "Endpoint paused: agents get no new tokens".into(),
        EndpointState::Failed => "Endpoint stopped: open Mandate to see why".into(),
        EndpointState::Unavailable => "Endpoint off: open Mandate to see why".into(),
    }
}

fn icon(running: bool) -> Option<Image<'static>> {
    let img = Image::from_bytes(ICON).ok()?;
    let (w, h) = (img.width(), img.height());
    let mut rgba = img.rgba().to_vec();
    if !running {
        // Grey and half transparent: "not serving" at a glance.
        for px in rgba.chunks_exact_mut(4) {
            let grey =
                ((u32::from(px[0]) * 3 + u32::from(px[1]) * 6 + u32::from(px[2])) / 10) as u8;
            px[0] = grey;
            px[1] = grey;
            px[2] = grey;
            px[3] /= 2;
        }
    }
    Some(Image::new_owned(rgba, w, h))
}

fn menu(app: &AppHandle, s: &EndpointStatus) -> tauri::Result<Menu<Wry>> {
    let status = MenuItem::with_id(app, "status", describe(s), false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Mandate", true, None::<&str>)?;
    let toggle = match s.state {
        _ if s.served_by != ServedByView::App => MenuItem::with_id(
            app,
            "resume",
            "Runs while Mandate is closed",
            false,
            None::<&str>,
        )?,
        EndpointState::Running | EndpointState::Starting => {
            MenuItem::with_id(app, "pause", "Pause endpoint", true, None::<&str>)?
        }
        EndpointState::Unavailable => {
            MenuItem::with_id(app, "resume", "Start endpoint", false, None::<&str>)?
        }
        _ => MenuItem::with_id(app, "resume", "Start endpoint", true, None::<&str>)?,
    };
    let quit = MenuItem::with_id(app, "quit", "Quit Mandate", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    Menu::with_items(app, &[&status, &sep, &open, &toggle, &sep2, &quit])
}

/// Make the tray icon.
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let status = app.state::<AppState>().endpoint.status();
    let mut b = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip(format!("Mandate · {}", describe(&status)))
        .menu(&menu(app, &status)?)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => crate::focus_main(app),
            "pause" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(why) = endpoint::pause(&app).await {
                        tracing::info!(%why, "the endpoint was not paused");
                    }
                });
            }
            "resume" => {
                if let Err(why) = endpoint::resume(app) {
                    tracing::info!(%why, "the endpoint was not started");
                }
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::focus_main(tray.app_handle());
            }
        });
    if let Some(i) = icon(status.state == EndpointState::Running) {
        b = b.icon(i);
    }
    b.build(app)?;
    Ok(())
}

/// Show the endpoint's current state in the tray.
pub fn refresh(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let status = app.state::<AppState>().endpoint.status();
    if let Ok(m) = menu(app, &status) {
        let _ = tray.set_menu(Some(m));
    }
    let _ = tray.set_tooltip(Some(format!("Mandate · {}", describe(&status))));
    let _ = tray.set_icon(icon(status.state == EndpointState::Running));
}
