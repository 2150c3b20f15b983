//! The browser tests' handle on a real headless Chromium (Debian's `chromium`
//! and `chromium-driver`), driven through the `fantoccini` WebDriver client.
//!
//! This module only starts ChromeDriver on a free port with a fresh profile,
//! keeps the small API the test files call (CSS selectors, panics instead of
//! `Result`s, generous waits) and runs the vendored axe-core check.
//!
//! Without Chromium the browser tests are ignored before they start
//! (`build.rs`, `on_both_backends!(browser: …)`); with `CI=true` they run and
//! fail here.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long `find` and `wait_until` wait: generous for a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// WebDriver's Shift key, which [`keys::SHIFT_TAB`] holds for the next key.
const SHIFT: char = '\u{E008}';

/// Keys for [`Browser::send_keys`] (WebDriver's private-use code points).
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const SHIFT_TAB: &str = "\u{E008}\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const SPACE: &str = " ";
    pub const END: &str = "\u{E010}";
    pub const ARROW_DOWN: &str = "\u{E015}";
}

/// A reference to an element of the current page.
pub type Element = fantoccini::elements::Element;

/// A browser session; the driver and its Chromium are killed on drop.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Unwraps a WebDriver answer, naming the command in the panic.
fn ok<T>(what: &str, result: Result<T, fantoccini::error::CmdError>) -> T {
    result.unwrap_or_else(|e| panic!("webdriver {what}: {e}"))
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium; panics when they are not
    /// installed (tests that need them are ignored on such a machine).
    pub async fn start() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "browser tests need {CHROMIUM} and {CHROMEDRIVER}"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, which the Chromium it starts joins:
            // see `Drop`.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        // Plain HTTP: the driver listens on loopback, so no TLS stack is built.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        // ChromeDriver serves as soon as it listens; until then connecting is refused.
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(POLL).await;
        }
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("webdriver new session: {e}"));
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        ok("goto", self.client.goto(url).await);
    }

    pub async fn current_url(&self) -> String {
        ok("current url", self.client.current_url().await).into()
    }

    pub async fn source(&self) -> String {
        ok("source", self.client.source().await)
    }

    /// The first element matching `css`, if there is one now.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// Waits (up to 20 s) for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element matches {css:?}: {e}"))
    }

    /// All elements matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        ok("find all", self.client.find_all(Locator::Css(css)).await)
    }

    pub async fn click(&self, element: &Element) {
        ok("click", element.click().await);
    }

    /// Types into an element (see [`keys`] for special keys).
    pub async fn type_into(&self, element: &Element, text: &str) {
        ok("type", element.send_keys(text).await);
    }

    /// Presses keys on whatever has focus; a Shift is held for the key after it.
    pub async fn send_keys(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".to_owned());
        let mut held_shift = false;
        for key in text.chars() {
            if key == SHIFT {
                actions = actions.then(KeyAction::Down { value: SHIFT });
                held_shift = true;
                continue;
            }
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
            if held_shift {
                actions = actions.then(KeyAction::Up { value: SHIFT });
                held_shift = false;
            }
        }
        ok("actions", self.client.perform_actions(actions).await);
        ok("release actions", self.client.release_actions().await);
    }

    pub async fn text(&self, element: &Element) -> String {
        ok("text", element.text().await)
    }

    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        ok("attribute", element.attr(name).await)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        ok("execute", self.client.execute(script, args).await)
    }

    /// Runs an asynchronous `script` that calls `arguments[arguments.length - 1]`
    /// with its result.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        ok(
            "execute async",
            self.client.execute_async(script, args).await,
        )
    }

    /// Runs axe-core (vendored in `tests/assets`) against the page and returns
    /// the WCAG 2 A/AA violations as "rule: target" lines.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        const AXE: &str = include_str!("../assets/axe-core-4.14.1.min.js");
        // Colours are only final once entrance animations have finished.
        self.wait_until(
            "animations to finish",
            "return document.getAnimations().every(a => a.playState !== 'running' || a.effect.getComputedTiming().iterations === Infinity);",
        )
        .await;
        ok(
            "timeouts",
            self.client
                .update_timeouts(TimeoutConfiguration::new(
                    Some(Duration::from_secs(30)),
                    None,
                    None,
                ))
                .await,
        );
        self.execute(&format!("{AXE}\nreturn true;"), vec![]).await;
        let result = self
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                   .then(r => done(r.violations.flatMap(v => v.nodes.map(n => v.id + ': ' + n.target.join(' ')))))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await;
        result
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to 20 s) until `script` returns `true`.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.execute(script, vec![]).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sizes the window so that the page's viewport is `width` × `height`
    /// CSS pixels (a window's frame, if any, is measured and added).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        ok(
            "window size",
            self.client.set_window_size(width, height).await,
        );
        let inner = self
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let measured = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
        let (extra_w, extra_h) = (
            width.saturating_sub(measured(0)),
            height.saturating_sub(measured(1)),
        );
        if extra_w > 0 || extra_h > 0 {
            ok(
                "window size",
                self.client
                    .set_window_size(width + extra_w, height + extra_h)
                    .await,
            );
        }
    }

    /// Logs in through the real form.
    pub async fn login(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        let field = self.find("#email").await;
        self.type_into(&field, email).await;
        let field = self.find("#password").await;
        self.type_into(&field, password).await;
        let submit = self.find("form button[type=submit]").await;
        self.click(&submit).await;
    }

    /// Ends the browser session.
    pub async fn quit(mut self) {
        // `close` takes the client; a clone shares its session.
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    /// A test that fails never reaches [`Browser::quit`], and killing the
    /// driver alone left its Chromium running: two renderers at a fifth of
    /// a core each, for as long as the machine ran, after one failed
    /// browser test on each backend. The driver's whole process group goes.
    fn drop(&mut self) {
        // `None` once `quit` has ended the session and reaped the driver.
        if let Some(pid) = self.driver.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: `killpg` only sends a signal; the group is the one
            // the driver was started as the leader of.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}
