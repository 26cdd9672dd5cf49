//! The login state machine. The PAM module calls `Begin`, then `Answer` for
//! every question, until a step is final (Accept or Deny). All decisions are
//! made here; the module only renders steps.
//!
//! ```text
//!   Begin ─▶ trusted device ───────────▶ AcceptPending ─▶ Commit
//!       ├─▶ no method (or a name the system does not know), policy off ─▶ Accept (2FA is optional)
//!       ├─▶ no method, policy announced ▶ Accept + reminder
//!       ├─▶ no method, policy applies ─▶ EnrolCode ─▶ EnrolConfirm ─▶ AcceptPending ─▶ Commit
//!       │        (email offered: EnrolEmail: 1 app ─▶ EnrolCode; 2 address ─▶ code ─▶ EnrolConfirm)
//!       └─▶ a method, or a recovery code ─▶ AskCode{asked} ─▶ AcceptPending ─▶ Commit | Deny
//!                                          ├─ "" ─▶ Choose ─▶ AskCode{other method}
//!                                          └─ recovery code ─▶ EnrolCode ─▶ …
//! ```
//!
//! A name the system does not know is answered as a user without a method
//! who is in no group: the prompt does not tell whether a name exists. Its
//! enrolment at the prompt is never committed.
//!
//! Only root's logins (login, su, sudo, sshd) may set something up at the
//! prompt: a caller running as the user (a screen locker) only checks a
//! factor; it gets no enrolment and cannot use a recovery code.
//!
//! The parts: `sessions` (the table of logins in progress and its quotas),
//! `check` (what an answer at the code prompt is, and the one path every
//! code check takes), `choose` (which method is asked, sending email codes,
//! switching methods), `enrol` (enrolment at the prompt and its commit).
//!
//! Later additions (trusted devices) are further phases of [`Phase`]; the
//! module does not change.

mod check;
mod choose;
mod enrol;
mod key;
mod sessions;
mod trust;

pub use check::wait_message;
pub use choose::{APP_PROMPT, CHOOSE_PROMPT};
use sessions::{Charge, Session, Sessions};
pub use trust::question as trust_question;

use crate::adapters::syslog::Event;

use crate::adapters::syslog::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::origin::Origin;
use crate::random;
use crate::random::Random;
use crate::rules::bookkeeping;
use crate::rules::methods::{self, Method};
use crate::rules::policy::{self, Applies};
use crate::rules::recovery_codes;
use crate::rules::ssh_keys;
use crate::services::directory::Directory;
use crate::services::directory::Resolved;
use crate::services::factors::Factors;
use crate::services::hash_pool::HashPool;
use crate::services::outbox::Outbox;
use crate::services::{Caller, Handles};
use crate::store::Db;
use crate::store::Store;
use std::sync::Arc;
use twofactor_proto::error::Error;
use twofactor_proto::{Action, Step};
use zeroize::Zeroizing;

pub const INVALID: &str = "Invalid verification code.";
pub const INTERNAL: &str = "Two-factor authentication failed (internal error); login refused.";
/// A caller that is not root (a screen locker) met a user who must set up
/// a second factor first.
pub const NOT_FROM_HERE: &str = "Two-factor authentication is required for your account and is \
     not set up yet. Set it up at a login (console or ssh), or with `twofactorctl enable app`.";

/// Longest user, service, rhost or tty accepted from the module (the
/// contract's limit, which the module checks too).
const MAX_ITEM_LEN: usize = twofactor_proto::names::detail::MAX_VALUE_BYTES;
/// Longest `SSH_AUTH_INFO_0` (a large certificate fits).
const MAX_AUTH_INFO_LEN: usize = twofactor_proto::names::detail::MAX_SSH_AUTH_INFO_BYTES;
/// Where a login is.
enum Phase {
    /// The prompt for a code of the method `asked` was shown: a 6-digit
    /// answer is a code of that method (backup and recovery codes are taken
    /// at any code prompt).
    AskCode { asked: Method },
    /// A security key was asked to sign `request`; `fallback` is asked
    /// when none does.
    UseKey {
        request: twofactor_proto::key::AssertionRequest,
        fallback: Method,
        /// Credentials of other relying parties, asked for next when the
        /// key holds none of these.
        more: KeyGroups,
    },
    /// An empty answer at a code prompt showed the user's other methods.
    Choose(choose::Menu),
    /// Enrolment at the prompt: the secret was shown, a code is asked.
    EnrolCode(enrol::Pending),
    /// Enrolment at the prompt where email codes are offered: the choice,
    /// the address, the code sent to it.
    EnrolEmail(enrol::EmailSetup),
    /// The code was right; backup codes were shown, confirmation asked.
    EnrolConfirm(enrol::Confirming),
    /// A right code (of `Passed::method`) on a login that presents a
    /// device: trust it?
    OfferTrust(crate::rules::trusted_devices::Presented, Passed),
    /// The auth phase passed with a change pending (`AcceptPending`); the
    /// module commits it from the account phase, once the whole PAM auth
    /// stack has succeeded.
    Commit(Change),
}

/// What the account phase (`Commit`) completes: every login whose second
/// factor passed waits for it, so that the audit says `login-success` only
/// once the whole PAM stack has succeeded, and a change is stored only then.
enum Change {
    /// Nothing to store: the second factor passed (`second-factor-accepted`
    /// was logged); the commit logs the login's success.
    Login(Passed),
    /// A method set up at the prompt.
    Enrolment(enrol::Confirmed),
    /// A device to trust, after a right code of `Passed::method`.
    Trust(crate::rules::trusted_devices::Presented, Passed),
}

/// How a login's second factor passed, for its audit lines.
#[derive(Clone)]
struct Passed {
    /// The method's name (`app`, `email`, `backup-code`, `trusted-device`).
    method: &'static str,
    /// The trusted device that let it through (by id).
    device: Option<String>,
}

impl Passed {
    fn by(method: &'static str) -> Self {
        Passed {
            method,
            device: None,
        }
    }
}

impl Change {
    /// The method the login passed with, for `login-success`.
    fn method(&self) -> &'static str {
        match self {
            Change::Login(p) | Change::Trust(_, p) => p.method,
            Change::Enrolment(c) => c.method().name(),
        }
    }
}

impl Phase {
    /// The session id under which this login claimed a recovery code.
    fn recovery_claim(&self) -> Option<&str> {
        match self {
            Phase::AskCode { .. }
            | Phase::UseKey { .. }
            | Phase::Choose(_)
            | Phase::OfferTrust(..) => None,
            Phase::EnrolCode(p) => p.recovery_claim(),
            Phase::EnrolEmail(e) => e.recovery_claim(),
            Phase::EnrolConfirm(c) => c.recovery_claim(),
            Phase::Commit(Change::Enrolment(c)) => c.recovery_claim(),
            Phase::Commit(Change::Trust(..) | Change::Login(_)) => None,
        }
    }
}

/// How long a change waits for `Commit` after the auth phase passed: the
/// account phase follows at once in every PAM application.
const COMMIT_SECONDS: i64 = 60;

/// What an answer leads to: a final step, or a next phase of the same
/// session with the step that asks its question.
enum Next {
    Done(Step),
    /// The second factor passed (`step` accepts): the login waits for the
    /// account phase, after offering to trust its device if `may_trust`
    /// (a right app or email code, never a backup code).
    Passed {
        method: &'static str,
        step: Step,
        may_trust: bool,
    },
    Continue(Phase, Step),
}

/// The step of a login whose second factor passed: it accepts, and the
/// session waits for `Commit` (the module keeps it for the account phase).
fn waiting_for_commit(mut step: Step) -> Step {
    step.action = Action::AcceptPending;
    step
}

/// The step that ends the auth phase, as `origin`'s module is told it: a
/// plain login (nothing to store, only its success to audit) ends with
/// `AcceptReport` for a module that sends `Commit` without waiting for
/// the reply (`commit_report`); anything else as it is.
fn as_told(origin: &Origin, phase: &Phase, mut step: Step) -> Step {
    if origin.commit_report
        && step.action == Action::AcceptPending
        && matches!(phase, Phase::Commit(Change::Login(_)))
    {
        step.action = Action::AcceptReport;
    }
    step
}

/// Credential ids by relying party (empty: this machine's).
type KeyGroups = Vec<(String, Vec<Vec<u8>>)>;

/// What the daemon knows of a user when a login begins.
struct Facts {
    /// The method to ask first (among those this machine offers, else
    /// the first they have); None: the user has no method.
    first: Option<Method>,
    /// The id of the trusted device the login presents (its use recorded).
    trusted: Option<String>,
    /// The id of the user's security-key SSH key the login proved to sshd
    /// (whether it counts is decided after the read: the caller must be
    /// root and sshd must require a touch).
    ssh_key: Option<String>,
    /// The credential ids of the user's security keys by relying party
    /// (when keys are offered and the user has one).
    key_credentials: KeyGroups,
    methods: choose::Methods,
    recovery_pending: bool,
    policy: twofactor_proto::types::Policy,
}

/// Everything a login needs to know of `user`, in one read (`presented`:
/// the device the login presents, if any).
fn facts_of(
    c: &Db,
    user: &str,
    config: &crate::config::Config,
    presented: Option<&crate::rules::trusted_devices::Presented>,
    security_key: Option<&ssh_keys::Key>,
    now: i64,
) -> crate::store::db::Result<Facts> {
    let methods = choose::methods_in(c, user, config)?;
    let ssh_key = match security_key {
        Some(key)
            if Method::SshKey.offered(config) && methods.enrolled.contains(&Method::SshKey) =>
        {
            ssh_keys::find(c, user, key)?
        }
        _ => None,
    };
    let key_credentials = if Method::Key.offered(config) && methods.enrolled.contains(&Method::Key)
    {
        crate::rules::security_keys::credentials_by_rp(c, user)?
    } else {
        Vec::new()
    };
    // A user with no method never gets trust.
    let trusted = match presented {
        Some(d) if !methods.usable.is_empty() => {
            crate::rules::trusted_devices::trusted(c, user, d, now)?
        }
        _ => None,
    };
    let (preferred, last_used) = bookkeeping::method_choice(c, user)?;
    let first = methods::first_to_ask(&methods.usable, &preferred, &last_used)
        .or_else(|| methods.enrolled.first().copied());
    Ok(Facts {
        first,
        trusted,
        ssh_key,
        key_credentials,
        methods,
        recovery_pending: recovery_codes::pending(c, user, now)?.is_some(),
        policy: policy::get(c, &config.policy)?,
    })
}

/// The caller of a call, still to be had (from the bus) or known.
pub type CallerFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Caller, Error>> + Send + 'a>>;

/// Where the faces (the bus, the login socket) hand a login's calls: the
/// state machine here ([`Logins`]), or, on a fleet's host, a verifier
/// (`api::fleet::host::Forwarder`). The same calls, the same steps.
#[async_trait::async_trait]
pub trait LoginSteps: Send + Sync {
    /// Starts a login: the session id ("" when the step is final) and
    /// the first step.
    async fn begin_with(
        &self,
        caller: CallerFuture<'_>,
        origin: Origin,
    ) -> Result<(String, Step), Error>;
    /// Answers the question of a session's last step.
    async fn answer(&self, caller: &Caller, id: &str, answer: Vec<u8>) -> Result<Step, Error>;
    /// Stores what the login left pending (the account phase).
    async fn commit(&self, caller: &Caller, id: &str) -> Result<Step, Error>;
    /// Forgets a login in progress.
    async fn cancel(&self, caller: &Caller, id: &str) -> Result<(), Error>;
    /// The connection left: its logins in progress go.
    async fn connection_closed(&self, connection: &str);
    /// Drops logins whose time is up.
    async fn expire(&self);
}

#[async_trait::async_trait]
impl LoginSteps for Logins {
    async fn begin_with(
        &self,
        caller: CallerFuture<'_>,
        origin: Origin,
    ) -> Result<(String, Step), Error> {
        Logins::begin_with(self, caller, origin).await
    }
    async fn answer(&self, caller: &Caller, id: &str, answer: Vec<u8>) -> Result<Step, Error> {
        Logins::answer(self, caller, id, answer).await
    }
    async fn commit(&self, caller: &Caller, id: &str) -> Result<Step, Error> {
        Logins::commit(self, caller, id).await
    }
    async fn cancel(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        Logins::cancel(self, caller, id).await
    }
    async fn connection_closed(&self, connection: &str) {
        Logins::connection_closed(self, connection).await
    }
    async fn expire(&self) {
        Logins::expire(self).await
    }
}

pub struct Logins {
    config: Arc<Config>,
    store: Store,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Random>,
    audit: Arc<Audit>,
    host: Arc<str>,
    hashing: Arc<HashPool>,
    factors: Arc<Factors>,
    outbox: Arc<Outbox>,
    directory: Directory,
    sessions: Sessions,
}

impl Logins {
    pub fn new(h: &Handles) -> Self {
        Logins {
            config: h.config.clone(),
            store: h.store.clone(),
            clock: h.clock.clone(),
            rng: h.rng.clone(),
            audit: h.audit.clone(),
            host: h.host.clone(),
            hashing: h.hashing.clone(),
            factors: h.factors.clone(),
            outbox: h.outbox.clone(),
            directory: h.directory.clone(),
            sessions: Sessions::default(),
        }
    }

    /// Starts a login. Returns the session id ("" when the step is final)
    /// and the first step.
    pub async fn begin(&self, caller: &Caller, origin: Origin) -> Result<(String, Step), Error> {
        self.begin_with(async { Ok(caller.clone()) }, origin).await
    }

    /// [`Logins::begin`], with the caller still to be had (from the bus):
    /// the name is resolved meanwhile, which tells nothing to anyone and
    /// changes nothing; every decision waits for the caller.
    pub async fn begin_with(
        &self,
        caller: impl std::future::Future<Output = Result<Caller, Error>>,
        mut origin: Origin,
    ) -> Result<(String, Step), Error> {
        for (name, value) in [
            ("service", &origin.service),
            ("rhost", &origin.rhost),
            ("tty", &origin.tty),
        ] {
            if value.len() > MAX_ITEM_LEN {
                return Err(Error::InvalidInput(format!("{name} is too long")));
            }
        }
        if origin.user.len() > MAX_ITEM_LEN {
            return Err(Error::InvalidInput("user name is too long".into()));
        }
        if origin.user.is_empty() {
            return Err(Error::InvalidInput("user name is empty".into()));
        }
        if origin.ssh_auth_info.len() > MAX_AUTH_INFO_LEN {
            return Err(Error::InvalidInput("ssh_auth_info is too long".into()));
        }
        // One account, one identity: every spelling of a name (a same-uid
        // alias, another case under a case-insensitive name service) is
        // resolved to the uid's own name, and all state is keyed by that.
        // Everything a login needs to know is read right after, in the
        // same job, while the caller's uid is asked of the bus: the read
        // decides nothing by itself (the code is checked in the writer),
        // and nothing is decided before the caller is known.
        let now = self.clock.now();
        let config = self.config.clone();
        let offered = crate::rules::trusted_devices::presented(
            &config.devices,
            &origin,
            &origin.ssh_auth_info,
        );
        let looked_for = offered.clone();
        let security_key = ssh_keys::presented(&config, &origin);
        let directory = self.directory_for(&origin);
        let resolving = directory.resolve_then_read(&origin.user, move |user| {
            let user = user.to_string();
            move |c: &Db| {
                facts_of(
                    c,
                    &user,
                    &config,
                    looked_for.as_ref(),
                    security_key.as_ref(),
                    now,
                )
            }
        });
        let (caller, resolved) = tokio::join!(caller, resolving);
        let caller = &caller?;
        let Resolved { account, facts } = resolved?;
        self.authorize(caller, account.as_ref().map(|(_, uid)| *uid))?;
        let known = account.is_some();
        if let Some((name, _)) = account {
            origin.user = name;
        }
        let device = if known {
            trust::presented(caller, offered)
        } else {
            None
        };
        let mut facts = match facts {
            Some(read) => read.map_err(|e| self.internal("login-begin", &e.to_string()))?,
            None => Facts {
                first: None,
                trusted: None,
                ssh_key: None,
                key_credentials: Vec::new(),
                methods: Default::default(),
                recovery_pending: false,
                policy: Default::default(),
            },
        };
        if device.is_none() {
            // Trust is only for a device this caller may present.
            facts.trusted = None;
        }
        if let (Some(_), Some(presented)) = (&facts.trusted, &device) {
            // The read above could not write, and the trust may have been
            // removed since, or the password changed: checked again, with
            // the use recorded (durably), before the login is let through.
            facts.trusted = self.use_trust(&origin, presented, now).await?;
        }
        // A security key the user registered, proved to sshd, counts only
        // for a root caller (sshd) and while sshd requires a touch.
        let security_key = match facts.ssh_key.take() {
            Some(id) if caller.uid == 0 => self.security_key_counts(&origin, id, now).await,
            _ => None,
        };
        let phase = if security_key.is_some() {
            // No code is asked; the login's success waits for the account
            // phase like any other's.
            let passed = Passed {
                method: twofactor_proto::types::method::SSH_KEY,
                device: None,
            };
            self.audit.log(Event::SecondFactorAccepted {
                origin: &origin,
                method: passed.method,
                device: None,
            });
            (
                Phase::Commit(Change::Login(passed)),
                waiting_for_commit(Step::new(Action::Accept)),
            )
        } else if let Some(id) = facts.trusted.take() {
            // No code is asked; the login's success waits for the account
            // phase like any other's.
            let passed = Passed {
                method: twofactor_proto::types::method::TRUSTED_DEVICE,
                device: Some(id),
            };
            self.audit.log(Event::SecondFactorAccepted {
                origin: &origin,
                method: passed.method,
                device: passed.device.as_deref(),
            });
            (
                Phase::Commit(Change::Login(passed)),
                waiting_for_commit(Step::new(Action::Accept)),
            )
        } else if known && facts.first.is_some() && self.key_usable(&origin, &facts.key_credentials)
        {
            let fallback = facts.first.unwrap_or(Method::Key);
            self.ask_key(std::mem::take(&mut facts.key_credentials), fallback)
                .map_err(|e| self.internal("login-begin", &e))?
        } else if known && (facts.first.is_some() || facts.recovery_pending) {
            let asked = facts.first.unwrap_or(Method::App);
            let step = self.ask(&origin, asked, &facts.methods).await;
            (Phase::AskCode { asked }, step)
        } else {
            // No method, or a name the system does not know: answered alike.
            let applies = if known {
                self.policy_for(&origin, &origin.user, facts.policy, now)
                    .await
            } else {
                self.policy_for_unknown(now).await
            };
            let passes = |step: Step| {
                self.audit.log(if known {
                    Event::LoginNoMethod { origin: &origin }
                } else {
                    Event::LoginUnknownUser { origin: &origin }
                });
                Ok((String::new(), step))
            };
            match applies {
                Err(e) => {
                    // The name service could not say whether a
                    // group-limited policy applies: fail closed.
                    self.internal("login-begin", &e);
                    return Ok((String::new(), Step::new(Action::Deny).error(INTERNAL)));
                }
                Ok(Applies::No) => return passes(Step::new(Action::Accept)),
                Ok(Applies::Announced(date)) => {
                    return passes(Step::new(Action::Accept).info(enrol::reminder(&date)))
                }
                Ok(Applies::Now) if caller.uid != 0 => {
                    // A screen locker runs as the user: it checks a factor,
                    // it never sets one up.
                    self.audit.log(Event::Denied {
                        uid: caller.uid,
                        action: "enrol-at-prompt",
                    });
                    return Ok((String::new(), Step::new(Action::Deny).error(NOT_FROM_HERE)));
                }
                Ok(Applies::Now) => self.start_enrolment(&origin, enrol::Why::Policy)?,
            }
        };
        let id = random::token(self.rng.as_ref())
            .map_err(|e| self.internal("login-begin", &e.to_string()))?;
        let (phase, step) = phase;
        let step = as_told(&origin, &phase, step);
        let expires = if matches!(phase, Phase::Commit(_)) {
            now + COMMIT_SECONDS
        } else {
            now + i64::from(self.config.login.session_timeout_seconds)
        };
        let session = Session {
            charge: Charge::of(caller, &origin.rhost),
            owner: caller.clone(),
            origin,
            known,
            device,
            phase,
            expires,
        };
        self.sessions.insert(id.clone(), session, now)?;
        Ok((id, step))
    }

    /// Whether the security key `id` of `origin.user`, proved to sshd,
    /// counts: sshd must require a touch for every key of this login
    /// (`adapters::sshd`, off the async workers). When it does, the use is
    /// recorded with the login's and the key's id returned; when not, the
    /// reason is logged and the login asks for a code as usual.
    async fn security_key_counts(&self, origin: &Origin, id: String, now: i64) -> Option<String> {
        let why = match &origin.forwarded {
            // A fleet's host asked its own sshd (only it knows its
            // configuration); a host that did not say counts as "no".
            Some(f) => match &f.facts.touch_required {
                Some(Ok(())) => None,
                Some(Err(not)) => Some(not.clone()),
                None => Some("the host did not say whether sshd requires a touch".into()),
            },
            None => {
                let keys = self.config.keys.clone();
                let (user, rhost) = (origin.user.clone(), origin.rhost.clone());
                let checked = tokio::task::spawn_blocking(move || {
                    crate::adapters::sshd::touch_required(
                        &keys.sshd,
                        &keys.sshd_config,
                        &user,
                        &rhost,
                    )
                })
                .await;
                match checked {
                    Ok(Ok(())) => None,
                    Ok(Err(not)) => Some(not.to_string()),
                    Err(e) => Some(e.to_string()),
                }
            }
        };
        if let Some(why) = why {
            self.audit.log(Event::Error {
                context: "ssh-key-not-counted",
                error: &why,
            });
            return None;
        }
        let (u, i, host) = (
            origin.user.clone(),
            id.clone(),
            self.host_of(origin).to_string(),
        );
        let recorded = self
            .store
            .run(move |c| {
                ssh_keys::used(c, &u, &i, now)?;
                bookkeeping::record_login(
                    c,
                    &u,
                    twofactor_proto::types::method::SSH_KEY,
                    now,
                    &host,
                )
            })
            .await;
        match recorded {
            Ok(()) => Some(id),
            Err(e) => {
                self.internal("login-ssh-key", &e.to_string());
                None
            }
        }
    }

    /// Whether the mandatory policy applies to a name the system does not
    /// know: as to a user in no group.
    async fn policy_for_unknown(&self, now: i64) -> Result<Applies, String> {
        let config = self.config.clone();
        let policy = self
            .store
            .read(move |c| policy::get(c, &config.policy))
            .await
            .map_err(|e| e.to_string())?;
        policy::applies_to_user(|| Ok::<_, String>(Vec::new()), &policy, now)
    }

    /// Whether the mandatory policy applies to `user` now (groups looked
    /// up off the async workers).
    async fn policy_for(
        &self,
        origin: &Origin,
        user: &str,
        policy: twofactor_proto::types::Policy,
        now: i64,
    ) -> Result<Applies, String> {
        let user = user.to_string();
        self.directory_for(origin)
            .lookup(move |users| policy::applies_to_user(|| users.groups_of(&user), &policy, now))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Answers the question of a session's last step.
    pub async fn answer(&self, caller: &Caller, id: &str, answer: Vec<u8>) -> Result<Step, Error> {
        let answer = Zeroizing::new(answer);
        let Session {
            owner,
            charge,
            origin,
            known,
            device,
            phase,
            expires,
        } = self.sessions.take(caller, id, self.clock.now())?;
        let next = match phase {
            Phase::AskCode { asked } => {
                let may_enrol = owner.uid == 0;
                self.check_code(&origin, asked, &answer, (id, expires), may_enrol)
                    .await
            }
            Phase::UseKey {
                request,
                fallback,
                more,
            } => {
                self.key_answer(&origin, (request, more), fallback, &answer)
                    .await
            }
            Phase::Choose(menu) => self.choose(&origin, menu, &answer).await,
            Phase::EnrolCode(pending) => self.enrol_code(&origin, pending, &answer).await,
            Phase::EnrolEmail(setup) => self.enrol_email(&origin, setup, &answer).await,
            Phase::OfferTrust(d, passed) => self.trust_answer(d, passed, &answer),
            Phase::EnrolConfirm(confirming) => {
                self.enrol_confirm(&origin, confirming, &answer).await
            }
            Phase::Commit(change) => {
                // The auth phase is over; only Commit may follow.
                self.discard(&origin, &Phase::Commit(change), "answered-after-accept")
                    .await;
                return Err(Error::InvalidInput(
                    "this login waits for Commit, not for an answer".into(),
                ));
            }
        };
        let next = match next {
            Next::Passed {
                method,
                step,
                may_trust,
            } => {
                self.audit.log(Event::SecondFactorAccepted {
                    origin: &origin,
                    method,
                    device: None,
                });
                match device.clone() {
                    Some(d) if may_trust && self.config.devices.enabled => {
                        self.offer_trust(step, d, Passed::by(method))
                    }
                    _ => Next::Continue(
                        Phase::Commit(Change::Login(Passed::by(method))),
                        waiting_for_commit(step),
                    ),
                }
            }
            next => next,
        };
        match next {
            Next::Done(step) | Next::Passed { step, .. } => Ok(step),
            Next::Continue(phase, step) => {
                let step = as_told(&origin, &phase, step);
                let now = self.clock.now();
                let expires = if matches!(phase, Phase::Commit(_)) {
                    now + COMMIT_SECONDS
                } else {
                    expires
                };
                let session = Session {
                    owner,
                    charge,
                    origin,
                    known,
                    device,
                    phase,
                    expires,
                };
                self.sessions.insert(id.to_string(), session, now)?;
                Ok(step)
            }
        }
    }

    /// The whole PAM auth stack succeeded for the login `id` (the module
    /// calls this from `pam_sm_acct_mgmt`): store what it left pending.
    pub async fn commit(&self, caller: &Caller, id: &str) -> Result<Step, Error> {
        let Session {
            origin,
            phase,
            known,
            ..
        } = self.sessions.take(caller, id, self.clock.now())?;
        let change = match phase {
            Phase::Commit(change) if known => change,
            Phase::Commit(change) => {
                // A name the system does not know went through the
                // enrolment like anyone (its stack should have refused it).
                let phase = Phase::Commit(change);
                self.discard(&origin, &phase, "unknown-user").await;
                return Ok(Step::new(Action::Deny).error(INTERNAL));
            }
            other => {
                self.discard(&origin, &other, "commit-before-accept").await;
                return Err(Error::NotFound("this login has nothing to commit".into()));
            }
        };
        let method = change.method();
        let device = match &change {
            Change::Login(passed) => passed.device.clone(),
            _ => None,
        };
        let step = match change {
            Change::Login(_) => Step::new(Action::Accept),
            Change::Enrolment(confirmed) => self.commit_enrolment(&origin, confirmed).await,
            Change::Trust(presented, _) => self.commit_trust(&origin, presented).await,
        };
        if step.action == Action::Accept {
            self.audit.log(Event::LoginSuccess {
                origin: &origin,
                method,
                device: device.as_deref(),
            });
        } else {
            self.audit.log(Event::LoginNotCompleted {
                origin: &origin,
                method,
                why: "commit-failed",
            });
        }
        Ok(step)
    }

    /// Forgets a session (the module's conversation failed), giving back a
    /// recovery code it had claimed.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let session = self.sessions.take(caller, id, self.clock.now())?;
        self.discard(&session.origin, &session.phase, "cancelled")
            .await;
        Ok(())
    }

    /// Forgets every session of a bus connection that left the bus (the
    /// PAM handle ended, the process exited or was killed): abandoned
    /// prompts do not hold slots, and a change that was never committed is
    /// dropped.
    pub async fn connection_closed(&self, connection: &str) {
        for session in self.sessions.drain_connection(connection) {
            self.discard(&session.origin, &session.phase, "connection-closed")
                .await;
        }
    }

    /// What a session held is given up: a claimed recovery code is given
    /// back, and a pending change is audited as dropped.
    async fn discard(&self, origin: &Origin, phase: &Phase, why: &str) {
        if let Phase::Commit(change) = phase {
            // The second factor passed, but the account phase never
            // confirmed the login (the stack failed, or the application
            // gave up): not a success, and a change is not stored.
            self.audit.log(Event::LoginNotCompleted {
                origin,
                method: change.method(),
                why,
            });
            if !matches!(change, Change::Login(_)) {
                self.audit.log(Event::PendingDiscarded { origin, why });
            }
        }
        if let Some(claim) = phase.recovery_claim() {
            self.release_claim(origin, claim).await;
        }
    }

    /// Logins in progress (for tests and the status of the daemon).
    pub fn in_progress(&self) -> usize {
        self.sessions.len()
    }

    /// Drops sessions past their time, as a cancel would.
    pub async fn expire(&self) {
        for session in self.sessions.expire(self.clock.now()) {
            self.discard(&session.origin, &session.phase, "expired")
                .await;
        }
    }

    /// uid 0 may run a login for anyone; any other uid only for itself
    /// (the account the name resolved to, `uid`).
    /// The name service that speaks for `origin`'s user: this machine's,
    /// or, for a login a fleet's host forwarded, what that host reported.
    fn directory_for(&self, origin: &Origin) -> Directory {
        match &origin.forwarded {
            None => self.directory.clone(),
            Some(f) => self
                .directory
                .reported_by(Arc::new(crate::adapters::nss::Reported(f.facts.clone()))),
        }
    }

    /// The host a login is on: this machine, or the fleet's host that
    /// forwarded it.
    fn host_of<'a>(&'a self, origin: &'a Origin) -> &'a str {
        match &origin.forwarded {
            Some(f) => &f.host,
            None => &self.host,
        }
    }

    fn authorize(&self, caller: &Caller, uid: Option<u32>) -> Result<(), Error> {
        if caller.uid == 0 {
            return Ok(());
        }
        match uid {
            Some(uid) if uid == caller.uid => Ok(()),
            _ => {
                self.audit.log(Event::Denied {
                    uid: caller.uid,
                    action: "login-begin-other-user",
                });
                Err(Error::PermissionDenied(
                    "only root may check the second factor of another user".into(),
                ))
            }
        }
    }

    /// Gives back the recovery code a failed or cancelled login claimed.
    async fn release_claim(&self, origin: &Origin, session: &str) {
        let (user, sid) = (origin.user.clone(), session.to_string());
        if let Err(e) = self
            .store
            .run(move |c| recovery_codes::release(c, &user, &sid))
            .await
        {
            self.internal("login-recovery", &e.to_string());
        }
    }

    fn internal(&self, context: &str, error: &str) -> Error {
        self.audit.internal(context, error)
    }
}
#[cfg(test)]
mod email_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod trust_tests;

#[cfg(test)]
mod tests {
    use super::sessions::{
        MAX_SESSIONS_PER_ADDRESS, MAX_SESSIONS_PER_CONNECTION, MAX_SESSIONS_PER_HOST,
        MAX_SESSIONS_PER_USER,
    };
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::config::Config;
    use crate::params;
    use crate::rules::backup_codes::{self, Code};
    use crate::rules::bookkeeping;
    use crate::rules::totp;
    use crate::rules::totp::Secret;
    use std::sync::Mutex;
    use twofactor_proto::types::method;

    pub(super) use crate::api::fixture::{origin, root};

    const T0: i64 = 1_700_000_010;

    /// The shared world, with alice's app enrolled (bob has nothing), and
    /// small limits: 3 failures, then 30 s.
    pub(super) struct World {
        shared: crate::api::fixture::World,
        secret: Secret,
    }

    impl std::ops::Deref for World {
        type Target = crate::api::fixture::World;
        fn deref(&self) -> &Self::Target {
            &self.shared
        }
    }

    pub(super) fn world() -> World {
        let mut config = Config::default();
        config.limits.max_failures = 3;
        config.limits.lockout_seconds = 30;
        let shared = crate::api::fixture::World::at(config, T0);
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let bytes = secret.bytes().to_vec();
        shared
            .rt
            .block_on(shared.handles.store.run(move |c| {
                bookkeeping::ensure(c, "alice", 0)?;
                totp::activate(c, "alice", &Secret::from_bytes(bytes), 0, 0)
            }))
            .unwrap();
        World { shared, secret }
    }

    impl World {
        fn login(&self, caller: &Caller, user: &str, answer: &[u8]) -> Result<Step, Error> {
            self.rt.block_on(async {
                let (id, step) = self.logins.begin(caller, origin(user)).await?;
                if step.is_final() {
                    return Ok(step);
                }
                assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
                self.logins.answer(caller, &id, answer.to_vec()).await
            })
        }
        pub(super) fn code(&self, offset_steps: i64) -> String {
            self.secret.code_at(self.clock.now() + offset_steps * 30, 6)
        }
        pub(super) fn failures(&self) -> u32 {
            self.rt
                .block_on(
                    self.handles
                        .store
                        .run(|c| crate::rules::account_view::status(c, "alice", 0)),
                )
                .unwrap()
                .failures
        }
    }

    impl World {
        /// Gives alice a fresh set of backup codes; returns them as shown.
        fn backup_set(&self) -> Vec<String> {
            let codes = backup_codes::generate_set(&crate::random::OsRandom).unwrap();
            let hashed: Vec<(String, String)> = codes
                .iter()
                .map(|c| {
                    let h = self
                        .handles
                        .hashing
                        .hasher()
                        .hash(c.secret(), &crate::random::OsRandom)
                        .unwrap();
                    (c.selector().to_string(), h)
                })
                .collect();
            self.rt
                .block_on(
                    self.handles
                        .store
                        .run(move |c| backup_codes::replace_set(c, "alice", &hashed, 0)),
                )
                .unwrap();
            codes.iter().map(Code::display).collect()
        }
    }

    fn denied_with(step: &Step, text: &str) {
        assert_eq!(step.action, Action::Deny);
        assert!(
            step.messages.iter().any(|(_, m)| m.contains(text)),
            "{:?} should say {text:?}",
            step.messages
        );
    }

    #[test]
    fn right_code_once_then_replay_refused() {
        let w = world();
        let code = w.code(0);
        assert_eq!(
            w.login(&root(), "alice", code.as_bytes()).unwrap().action,
            Action::AcceptPending
        );
        denied_with(
            &w.login(&root(), "alice", code.as_bytes()).unwrap(),
            INVALID,
        );
        // An earlier step is refused too once a later one was used.
        denied_with(
            &w.login(&root(), "alice", w.code(-1).as_bytes()).unwrap(),
            INVALID,
        );
        assert_eq!(w.failures(), 2);
    }

    /// The audit claims no more than the daemon knows: a right code is
    /// `second-factor-accepted`; `login-success` only when the account
    /// phase commits; a login whose account phase never comes (the stack
    /// failed after the module, or time ran out) is `login-not-completed`.
    #[test]
    fn login_success_is_logged_only_when_the_account_phase_commits() {
        let w = world();
        let count = |event: &str| {
            w.audit_lines()
                .lines()
                .filter(|l| l.starts_with(event))
                .count()
        };
        let passed = |w: &World| {
            let (id, _) =
                w.rt.block_on(w.logins.begin(&root(), origin("alice")))
                    .unwrap();
            let step =
                w.rt.block_on(w.logins.answer(&root(), &id, w.code(0).into_bytes()))
                    .unwrap();
            assert_eq!(step.action, Action::AcceptPending);
            id
        };
        let id = passed(&w);
        assert_eq!(count("second-factor-accepted user=alice"), 1);
        assert_eq!(count("login-success"), 0, "{}", w.audit_lines());
        let done = w.rt.block_on(w.logins.commit(&root(), &id)).unwrap();
        assert_eq!(done.action, Action::Accept);
        assert_eq!(count("login-success user=alice service=sshd"), 1);
        assert!(w.audit_lines().contains("method=app"));

        // The handle ended without the account phase.
        w.clock.advance(30);
        passed(&w);
        w.rt.block_on(w.logins.connection_closed(":1.1"));
        assert_eq!(count("login-not-completed user=alice"), 1);
        assert!(w.audit_lines().contains("why=connection-closed"));
        // The account phase never came in time.
        w.clock.advance(30);
        passed(&w);
        w.clock.advance(COMMIT_SECONDS + 1);
        w.rt.block_on(w.logins.expire());
        assert_eq!(count("login-not-completed user=alice"), 2);
        assert!(w.audit_lines().contains("why=expired"));
        assert_eq!(count("login-success"), 1, "{}", w.audit_lines());
        assert_eq!(count("second-factor-accepted"), 3);
        assert_eq!(w.logins.in_progress(), 0);
    }

    /// A module that reports (`commit_report`) is told `AcceptReport` for
    /// a plain login, whose `Commit` then only audits the success; one
    /// that does not is told `AcceptPending` as before. Only a plain
    /// login is ever told so ([`as_told`]): trust taken or an enrolment
    /// keeps `AcceptPending` and its `Commit` is waited for.
    #[test]
    fn a_plain_login_is_reported_to_a_module_that_can_and_pending_otherwise() {
        let w = world();
        for (commit_report, told) in [(true, Action::AcceptReport), (false, Action::AcceptPending)]
        {
            w.clock.advance(30);
            let o = Origin {
                commit_report,
                ..origin("alice")
            };
            let (id, _) = w.rt.block_on(w.logins.begin(&root(), o)).unwrap();
            let step =
                w.rt.block_on(w.logins.answer(&root(), &id, w.code(0).into_bytes()))
                    .unwrap();
            assert_eq!(step.action, told);
            let done = w.rt.block_on(w.logins.commit(&root(), &id)).unwrap();
            assert_eq!(done.action, Action::Accept);
        }
        let successes = w
            .audit_lines()
            .lines()
            .filter(|l| l.starts_with("login-success user=alice"))
            .count();
        assert_eq!(successes, 2, "{}", w.audit_lines());
        // A wrong code is a refusal whatever the module can do.
        w.clock.advance(30);
        let o = Origin {
            commit_report: true,
            ..origin("alice")
        };
        let (id, _) = w.rt.block_on(w.logins.begin(&root(), o)).unwrap();
        let code = w.code(0);
        let wrong: String = code
            .bytes()
            .map(|b| char::from(b'0' + (b - b'0' + 5) % 10))
            .collect();
        let step =
            w.rt.block_on(w.logins.answer(&root(), &id, wrong.into_bytes()))
                .unwrap();
        denied_with(&step, INVALID);
    }

    #[test]
    fn skew_is_one_step() {
        let w = world();
        denied_with(
            &w.login(&root(), "alice", w.code(-2).as_bytes()).unwrap(),
            INVALID,
        );
        assert_eq!(
            w.login(&root(), "alice", w.code(-1).as_bytes())
                .unwrap()
                .action,
            Action::AcceptPending
        );
    }

    #[test]
    fn malformed_answers_are_refused_without_counting() {
        let w = world();
        for bad in [
            &b"12a456"[..],
            b"",
            b"+12345",
            "１２３４５６".as_bytes(),
            b"\xff\xfe",
            &[b'1'; 10_000],
        ] {
            let step = w.login(&root(), "alice", bad).unwrap();
            assert_eq!(step.action, Action::Deny);
            assert!(!step.messages.is_empty());
            assert!(!step.messages.iter().any(|(_, m)| m == INVALID));
        }
        assert_eq!(w.failures(), 0);
    }

    #[test]
    fn user_without_method_passes() {
        let w = world();
        let bob = w.login(&root(), "bob", b"").unwrap();
        assert_eq!(bob.action, Action::Accept);
        assert!(bob.messages.is_empty());
    }

    #[test]
    fn lockout_waits_then_lets_in() {
        let w = world();
        let wrong = if w.code(0) == "111111" {
            "222222"
        } else {
            "111111"
        };
        for _ in 0..3 {
            denied_with(
                &w.login(&root(), "alice", wrong.as_bytes()).unwrap(),
                INVALID,
            );
        }
        // Locked: even the right code is refused, with the wait.
        denied_with(
            &w.login(&root(), "alice", w.code(0).as_bytes()).unwrap(),
            "try again in 30 seconds",
        );
        w.clock.advance(10);
        denied_with(
            &w.login(&root(), "alice", w.code(0).as_bytes()).unwrap(),
            "try again in 20 seconds",
        );
        w.clock.advance(21);
        assert_eq!(
            w.login(&root(), "alice", w.code(0).as_bytes())
                .unwrap()
                .action,
            Action::AcceptPending
        );
        assert_eq!(w.failures(), 0);
    }

    #[test]
    fn non_root_callers_only_for_themselves_and_sessions_are_bound() {
        let w = world();
        let alice = Caller {
            uid: 1000,
            connection: ":1.7".into(),
            invoker: None,
            on_host: None,
        };
        let bob = Caller {
            uid: 1001,
            connection: ":1.8".into(),
            invoker: None,
            on_host: None,
        };
        assert!(matches!(
            w.login(&bob, "alice", b"123456"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            w.login(
                &Caller {
                    uid: 4242,
                    connection: ":1.9".into(),
                    invoker: None,
                    on_host: None,
                },
                "alice",
                b"1"
            ),
            Err(Error::PermissionDenied(_))
        ));
        assert_eq!(
            w.login(&alice, "alice", w.code(0).as_bytes())
                .unwrap()
                .action,
            Action::AcceptPending
        );
        // A session cannot be answered from another connection.
        w.clock.advance(30);
        let (id, _) =
            w.rt.block_on(w.logins.begin(&root(), origin("alice")))
                .unwrap();
        let other_root = Caller {
            uid: 0,
            connection: ":1.99".into(),
            invoker: None,
            on_host: None,
        };
        assert!(matches!(
            w.rt.block_on(w.logins.answer(&other_root, &id, w.code(0).into_bytes())),
            Err(Error::NotFound(_))
        ));
        // The owner still can, once; then the session is gone.
        assert_eq!(
            w.rt.block_on(w.logins.answer(&root(), &id, w.code(0).into_bytes()))
                .unwrap()
                .action,
            Action::AcceptPending
        );
        assert!(w
            .rt
            .block_on(w.logins.answer(&root(), &id, b"1".to_vec()))
            .is_err());
    }

    #[test]
    fn sessions_expire() {
        let w = world();
        let (id, _) =
            w.rt.block_on(w.logins.begin(&root(), origin("alice")))
                .unwrap();
        w.clock.advance(121);
        assert!(matches!(
            w.rt.block_on(w.logins.answer(&root(), &id, w.code(0).into_bytes())),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn concurrent_logins_with_one_code_accept_once() {
        let w = world();
        let code = w.code(0);
        let logins = Arc::new(Logins::new(&w.handles));
        let results: Vec<Step> = w.rt.block_on(async {
            let mut ids = Vec::new();
            for i in 0..50 {
                let c = Caller {
                    uid: 0,
                    connection: format!(":1.{i}"),
                    invoker: None,
                    on_host: None,
                };
                let (id, _) = logins.begin(&c, origin("alice")).await.unwrap();
                ids.push((c, id));
            }
            let tasks: Vec<_> = ids
                .into_iter()
                .map(|(c, id)| {
                    let l = logins.clone();
                    let code = code.clone();
                    tokio::spawn(async move { l.answer(&c, &id, code.into_bytes()).await.unwrap() })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let accepted = results
            .iter()
            .filter(|s| s.action == Action::AcceptPending)
            .count();
        assert_eq!(accepted, 1);
    }

    #[test]
    fn backup_code_once_any_case_and_separator() {
        let w = world();
        let codes = w.backup_set();
        let shouted = codes[0].to_uppercase().replace('-', "");
        let step = w.login(&root(), "alice", shouted.as_bytes()).unwrap();
        assert_eq!(step.action, Action::AcceptPending);
        denied_with(
            &w.login(&root(), "alice", codes[0].as_bytes()).unwrap(),
            INVALID,
        );
        let spaced = codes[1].replace('-', " ");
        assert_eq!(
            w.login(&root(), "alice", spaced.as_bytes()).unwrap().action,
            Action::AcceptPending
        );
        let status = w.status_of("alice");
        assert_eq!(status.backup_codes_left, 8);
        assert_eq!(status.last_method, method::BACKUP_CODE);
        assert_eq!(status.failures, 0);
    }

    #[test]
    fn new_set_voids_the_old_one() {
        let w = world();
        let old = w.backup_set();
        let new = w.backup_set();
        denied_with(
            &w.login(&root(), "alice", old[0].as_bytes()).unwrap(),
            INVALID,
        );
        assert_eq!(
            w.login(&root(), "alice", new[0].as_bytes()).unwrap().action,
            Action::AcceptPending
        );
    }

    #[test]
    fn warns_when_two_or_fewer_left() {
        let w = world();
        let codes = w.backup_set();
        for (i, code) in codes.iter().enumerate() {
            let step = w.login(&root(), "alice", code.as_bytes()).unwrap();
            assert_eq!(step.action, Action::AcceptPending);
            let left = 9 - i;
            let warned = step.messages.iter().any(|(_, m)| m.contains("backup code"));
            assert_eq!(warned, left <= 2, "{left} left: {:?}", step.messages);
        }
        // The app login warns too once none are left.
        let step = w.login(&root(), "alice", w.code(0).as_bytes()).unwrap();
        assert_eq!(step.action, Action::AcceptPending);
        assert!(step
            .messages
            .iter()
            .any(|(_, m)| m.contains("no backup codes left")));
    }

    #[test]
    fn wrong_backup_codes_cost_at_most_one_argon2_each_and_are_limited() {
        let w = world();
        let codes = w.backup_set();
        w.handles.hashing.decoy_hash();
        let before = w.handles.hashing.hasher().verifications();
        // A random wrong code: no selector matches, and still exactly one
        // argon2 (the decoy), like a code whose selector exists.
        denied_with(
            &w.login(&root(), "alice", b"zzzz-zzzz-zzzz").unwrap(),
            INVALID,
        );
        assert_eq!(w.handles.hashing.hasher().verifications(), before + 1);
        let before = w.handles.hashing.hasher().verifications();
        // A right selector with a wrong rest: exactly one verification.
        let forged = format!("{}-2222-2222", &codes[0][..4]);
        denied_with(
            &w.login(&root(), "alice", forged.as_bytes()).unwrap(),
            INVALID,
        );
        assert_eq!(w.handles.hashing.hasher().verifications(), before + 1);
        // Third failure locks (max_failures = 3): no more hashing at all.
        denied_with(
            &w.login(&root(), "alice", forged.as_bytes()).unwrap(),
            INVALID,
        );
        let locked_at = w.handles.hashing.hasher().verifications();
        for _ in 0..20 {
            denied_with(
                &w.login(&root(), "alice", forged.as_bytes()).unwrap(),
                "try again in",
            );
        }
        denied_with(
            &w.login(&root(), "alice", codes[0].as_bytes()).unwrap(),
            "try again in",
        );
        assert_eq!(w.handles.hashing.hasher().verifications(), locked_at);
    }

    #[test]
    fn concurrent_logins_with_one_backup_code_accept_once() {
        let w = world();
        let code = w.backup_set().remove(0);
        let logins = Arc::new(Logins::new(&w.handles));
        let accepted = w.rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..20 {
                let c = Caller {
                    uid: 0,
                    connection: format!(":1.{i}"),
                    invoker: None,
                    on_host: None,
                };
                let (id, _) = logins.begin(&c, origin("alice")).await.unwrap();
                let l = logins.clone();
                let code = code.clone();
                tasks.push(tokio::spawn(async move {
                    l.answer(&c, &id, code.into_bytes()).await.unwrap()
                }));
            }
            let mut n = 0;
            for t in tasks {
                if t.await.unwrap().action == Action::AcceptPending {
                    n += 1;
                }
            }
            n
        });
        assert_eq!(accepted, 1);
    }

    #[test]
    fn one_uid_cannot_fill_the_session_table() {
        let w = world();
        let alice = |n: usize| Caller {
            uid: 1000,
            connection: format!(":2.{n}"),
            invoker: None,
            on_host: None,
        };
        let mut refused = 0;
        for n in 0..100 {
            for _ in 0..64 {
                if w.rt
                    .block_on(w.logins.begin(&alice(n), origin("alice")))
                    .is_err()
                {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 100 * 64 - MAX_SESSIONS_PER_USER);
        // Root's logins for others still start: at the console, and from
        // other addresses.
        for n in 0..200 {
            let c = Caller {
                uid: 0,
                connection: format!(":3.{n}"),
                invoker: None,
                on_host: None,
            };
            let console = Origin {
                rhost: String::new(),
                ..origin("alice")
            };
            assert!(w.rt.block_on(w.logins.begin(&c, console)).is_ok());
            let remote = Origin {
                rhost: format!("198.51.100.{n}"),
                ..origin("alice")
            };
            assert!(w.rt.block_on(w.logins.begin(&c, remote)).is_ok());
        }
    }

    /// `su` and `sudo` call as root, started by a user: the logins they
    /// leave at the prompt count against that user, and fill only that
    /// user's quota.
    #[test]
    fn logins_left_by_a_users_su_fill_only_that_users_quota() {
        let w = world();
        let su_by = |user: u32, n: usize| Caller {
            uid: 0,
            connection: format!(":4.{user}.{n}"),
            invoker: Some(user),
            on_host: None,
        };
        let console = |user: &str| Origin {
            rhost: String::new(),
            service: "su".into(),
            ..origin(user)
        };
        let mut refused = 0;
        for n in 0..300 {
            if w.rt
                .block_on(w.logins.begin(&su_by(1000, n), console("alice")))
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 300 - MAX_SESSIONS_PER_USER);
        // Whatever rhost a user's su claims, it is charged to the user.
        let claims_remote = Origin {
            rhost: "203.0.113.9".into(),
            ..console("alice")
        };
        assert!(matches!(
            w.rt.block_on(w.logins.begin(&su_by(1000, 999), claims_remote)),
            Err(Error::RateLimited(_))
        ));
        // Another user's su, root's own su, the console and sshd go on.
        assert!(w
            .rt
            .block_on(w.logins.begin(&su_by(1001, 0), console("alice")))
            .is_ok());
        assert!(w
            .rt
            .block_on(w.logins.begin(&root(), console("alice")))
            .is_ok());
        assert!(w
            .rt
            .block_on(w.logins.begin(&root(), origin("alice")))
            .is_ok());
    }

    /// At a fleet's verifier, quotas are per host: a user's `su` left at
    /// the prompt on one host does not count against the same uid on
    /// another, and one host's logins in progress never take more than
    /// its share of the table: another host's login still starts.
    #[test]
    fn at_a_verifier_each_host_has_its_own_quotas() {
        use crate::origin::{Forwarded, HostFacts};
        let w = world();
        let from = |host: &str, service: &str| Origin {
            rhost: String::new(),
            service: service.into(),
            forwarded: Some(Arc::new(Forwarded {
                host: host.into(),
                facts: HostFacts {
                    account: Some(("alice".into(), 1000)),
                    groups: Ok(Vec::new()),
                    shadow: Ok(None),
                    touch_required: None,
                },
            })),
            ..origin("alice")
        };
        let caller = |host: &str, n: usize, invoker: Option<u32>| Caller {
            uid: 0,
            connection: format!("{host}/:9.{n}"),
            invoker,
            on_host: None,
        };
        let begin = |c: Caller, o: Origin| w.rt.block_on(w.logins.begin(&c, o));
        let refused = (0..40)
            .filter(|n| begin(caller("host-a", *n, Some(1000)), from("host-a", "su")).is_err())
            .count();
        assert_eq!(refused, 40 - MAX_SESSIONS_PER_USER);
        assert!(begin(caller("host-b", 0, Some(1000)), from("host-b", "su")).is_ok());
        // Host A's console logins (charged to no user) up to its share.
        let mut n = 1000;
        loop {
            n += 1;
            if begin(caller("host-a", n, None), from("host-a", "login")).is_err() {
                break;
            }
            assert!(
                n < 1000 + sessions::MAX_SESSIONS,
                "host A was never stopped"
            );
        }
        assert_eq!(w.logins.in_progress(), MAX_SESSIONS_PER_HOST + 1);
        assert!(begin(caller("host-b", 1, None), from("host-b", "login")).is_ok());
    }

    /// One address's logins at the prompt (sshd, as root) are capped, and
    /// another address's still start.
    #[test]
    fn one_address_cannot_fill_the_session_table() {
        let w = world();
        let sshd = |n: usize| Caller {
            uid: 0,
            connection: format!(":6.{n}"),
            invoker: None,
            on_host: None,
        };
        let mut refused = 0;
        for n in 0..200 {
            if w.rt
                .block_on(w.logins.begin(&sshd(n), origin("alice")))
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 200 - MAX_SESSIONS_PER_ADDRESS);
        let other = Origin {
            rhost: "198.51.100.7".into(),
            ..origin("alice")
        };
        assert!(w.rt.block_on(w.logins.begin(&sshd(1000), other)).is_ok());
    }

    /// A login whose code passed and that only waits for its account phase
    /// holds nothing of its address's quota: with the module going on
    /// before its `Commit` is read (AcceptReport), 64 logins at once from
    /// one address must not be refused for the last ones' leftovers. The
    /// prompts still fill the quota as before.
    #[test]
    fn logins_that_passed_hold_nothing_of_their_addresss_quota() {
        let w = world();
        let sshd = |n: usize| Caller {
            uid: 0,
            connection: format!(":7.{n}"),
            invoker: None,
            on_host: None,
        };
        let report = || Origin {
            commit_report: true,
            ..origin("alice")
        };
        let (id, _) = w.rt.block_on(w.logins.begin(&sshd(0), report())).unwrap();
        let step =
            w.rt.block_on(w.logins.answer(&sshd(0), &id, w.code(0).into_bytes()))
                .unwrap();
        assert_eq!(step.action, Action::AcceptReport);
        // Its Commit not read yet: the address's whole quota of prompts is
        // still there.
        for n in 1..=MAX_SESSIONS_PER_ADDRESS {
            assert!(
                w.rt.block_on(w.logins.begin(&sshd(n), report())).is_ok(),
                "prompt {n} refused"
            );
        }
        assert!(w
            .rt
            .block_on(w.logins.begin(&sshd(1000), report()))
            .is_err());
        // And the passed login is still there to be committed.
        let done = w.rt.block_on(w.logins.commit(&sshd(0), &id)).unwrap();
        assert_eq!(done.action, Action::Accept);
    }

    #[test]
    fn every_spelling_of_a_name_is_one_account() {
        let w = world();
        let wrong = if w.code(0) == "111111" {
            "222222"
        } else {
            "111111"
        };
        // Another case (a case-insensitive name service) finds alice's
        // method and counts against alice's failures.
        denied_with(
            &w.login(&root(), "ALICE", wrong.as_bytes()).unwrap(),
            INVALID,
        );
        denied_with(
            &w.login(&root(), "Alice", wrong.as_bytes()).unwrap(),
            INVALID,
        );
        assert_eq!(w.failures(), 2);
        assert_eq!(
            w.login(&root(), "aLiCe", w.code(0).as_bytes())
                .unwrap()
                .action,
            Action::AcceptPending
        );
        // The code is used up for every spelling.
        denied_with(
            &w.login(&root(), "alice", w.code(0).as_bytes()).unwrap(),
            INVALID,
        );
        // A same-uid alias is root: once root has a method, `toor` is
        // asked for root's code, not let in.
        let secret = w.secret.bytes().to_vec();
        w.rt.block_on(w.handles.store.run(move |c| {
            bookkeeping::ensure(c, "root", 0)?;
            totp::activate(c, "root", &Secret::from_bytes(secret), 0, 0)
        }))
        .unwrap();
        let (id, step) =
            w.rt.block_on(w.logins.begin(&root(), origin("toor")))
                .unwrap();
        assert_eq!(step.action, Action::AskHidden(APP_PROMPT.into()));
        assert!(!id.is_empty());
        // A non-root caller may check itself under any spelling, and no
        // one else.
        let alice = Caller {
            uid: 1000,
            connection: ":1.50".into(),
            invoker: None,
            on_host: None,
        };
        assert!(w
            .rt
            .block_on(w.logins.begin(&alice, origin("ALICE")))
            .is_ok());
        assert!(matches!(
            w.rt.block_on(w.logins.begin(&alice, origin("toor"))),
            Err(Error::PermissionDenied(_))
        ));
    }

    #[test]
    fn a_failed_group_look_up_fails_closed() {
        let w = world();
        w.rt.block_on(w.handles.store.run(|c| {
            policy::set(
                c,
                &twofactor_proto::types::Policy {
                    mandatory: true,
                    groups: vec!["staff".into()],
                    from: String::new(),
                    ..Default::default()
                },
            )
        }))
        .unwrap();
        // bob is not in staff: no method needed.
        assert_eq!(w.login(&root(), "bob", b"").unwrap().action, Action::Accept);
        // The directory does not answer for ldapdown: refused, not let in
        // as "no groups".
        let step = w.login(&root(), "ldapdown", b"").unwrap();
        denied_with(&step, INTERNAL);
    }

    #[test]
    fn a_connection_that_leaves_the_bus_takes_its_logins_along() {
        let w = world();
        let gone = Caller {
            uid: 0,
            connection: ":1.77".into(),
            invoker: None,
            on_host: None,
        };
        for _ in 0..MAX_SESSIONS_PER_CONNECTION {
            w.rt.block_on(w.logins.begin(&gone, origin("alice")))
                .unwrap();
        }
        assert!(matches!(
            w.rt.block_on(w.logins.begin(&gone, origin("alice"))),
            Err(Error::RateLimited(_))
        ));
        // From another address (this one has all it may have).
        let elsewhere = Origin {
            rhost: "192.0.2.2".into(),
            ..origin("alice")
        };
        let (kept, _) = w.rt.block_on(w.logins.begin(&root(), elsewhere)).unwrap();
        assert_eq!(w.logins.in_progress(), MAX_SESSIONS_PER_CONNECTION + 1);
        w.rt.block_on(w.logins.connection_closed(":1.77"));
        assert_eq!(w.logins.in_progress(), 1);
        // Another connection's login goes on.
        assert_eq!(
            w.rt.block_on(w.logins.answer(&root(), &kept, w.code(0).into_bytes()))
                .unwrap()
                .action,
            Action::AcceptPending
        );
    }

    #[test]
    fn a_flood_from_one_address_does_not_lock_the_owner_out_elsewhere() {
        let w = world();
        let wrong = if w.code(0) == "111111" {
            "222222"
        } else {
            "111111"
        };
        let from = |rhost: &str| Origin {
            rhost: rhost.into(),
            ..origin("alice")
        };
        let attempt = |o: Origin, answer: &str| {
            w.rt.block_on(async {
                let (id, _) = w.logins.begin(&root(), o).await?;
                w.logins
                    .answer(&root(), &id, answer.as_bytes().to_vec())
                    .await
            })
            .unwrap()
        };
        for _ in 0..50 {
            attempt(from("198.51.100.66"), wrong);
        }
        // max_failures = 3: the attacker's address waits...
        denied_with(&attempt(from("198.51.100.66"), &w.code(0)), "try again in");
        // ...the owner's does not.
        assert_eq!(
            attempt(from("192.0.2.10"), &w.code(0)).action,
            Action::AcceptPending
        );
        // Only 3 of the 50 were checked (and counted): the rest waited.
        // The owner's success reset the account's count, not the attacker's
        // lock.
        assert_eq!(w.failures(), 0);
        w.clock.advance(10);
        denied_with(
            &attempt(from("198.51.100.66"), &w.code(0)),
            "try again in 20 seconds",
        );
    }

    #[test]
    fn a_right_app_code_is_not_counted_and_a_wrong_one_is() {
        let w = world();
        // Counts of the rows each login writes into the failure table (a
        // trigger on the writer's own connection).
        w.rt.block_on(w.handles.store.run(|c| {
            c.execute_batch(
                "CREATE TEMP TABLE counted(n INTEGER);
                 CREATE TEMP TRIGGER count_failures AFTER INSERT ON main.source_failures
                 BEGIN INSERT INTO counted VALUES (1); END;",
            )
        }))
        .unwrap();
        let counted =
            || -> i64 {
                w.rt.block_on(w.handles.store.run(|c| {
                    c.query_row("SELECT count(*) FROM temp.counted", params![], |r| r.get(0))
                }))
                .unwrap()
            };
        let login = |answer: String| {
            w.rt.block_on(async {
                let (id, _) = w.logins.begin(&root(), origin("alice")).await?;
                w.logins.answer(&root(), &id, answer.into_bytes()).await
            })
            .unwrap()
        };
        // A right code is checked and used in one job, which commits no
        // failure row to take back (half the pages of its commit).
        assert_eq!(login(w.code(0)).action, Action::AcceptPending);
        assert_eq!(counted(), 0);
        assert_eq!(w.failures(), 0);
        // A wrong one is counted, in the same job as its check.
        w.clock.advance(30);
        let wrong = if w.code(0) == "111111" {
            "222222"
        } else {
            "111111"
        };
        assert_eq!(login(wrong.into()).action, Action::Deny);
        assert_eq!(counted(), 1);
        assert_eq!(w.failures(), 1);
    }

    /// A name service that hangs on one name until released (a slow LDAP).
    struct SlowDirectory {
        inner: crate::adapters::nss::testing::FakeUsers,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        entered: Arc<std::sync::atomic::AtomicBool>,
        answered: Arc<std::sync::atomic::AtomicBool>,
    }

    impl crate::adapters::nss::Users for SlowDirectory {
        fn name_of(&self, uid: u32) -> Option<String> {
            self.inner.name_of(uid)
        }
        fn uid_of(&self, name: &str) -> Option<u32> {
            if name == "slowpoke" {
                self.entered
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let (lock, cv) = &*self.gate;
                if let Ok(guard) = lock.lock() {
                    let _ =
                        cv.wait_timeout_while(guard, std::time::Duration::from_secs(5), |open| {
                            !*open
                        });
                }
                self.answered
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return None;
            }
            self.inner.uid_of(name)
        }
        fn groups_of(&self, name: &str) -> Result<Vec<String>, crate::adapters::nss::LookupError> {
            self.inner.groups_of(name)
        }
        fn home_of(&self, name: &str) -> Option<std::path::PathBuf> {
            self.inner.home_of(name)
        }
        fn human_users(&self) -> Vec<(String, u32)> {
            self.inner.human_users()
        }
    }

    /// On either runtime: the daemon's (multi-thread, where blocking work
    /// runs on the task's own thread and the worker's other tasks move to
    /// another), and a current-thread one (blocking work on the pool).
    #[test]
    fn a_slow_name_service_does_not_stall_other_logins() {
        for multi_thread in [true, false] {
            let rt = if multi_thread {
                // One async worker, as little as there can be.
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            slow_name_service_on(&rt, multi_thread);
        }
    }

    fn slow_name_service_on(rt: &tokio::runtime::Runtime, multi_thread: bool) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let entered = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicBool::new(false));
        let clock = ManualClock::at(T0);
        let handles = crate::services::Handles::new(
            Config::default(),
            crate::store::Store::open_in_memory().unwrap(),
            crate::services::Outside {
                clock: Arc::new(clock),
                rng: Arc::new(crate::random::OsRandom),
                users: Arc::new(SlowDirectory {
                    inner: crate::adapters::nss::testing::FakeUsers::new(&[("alice", 1000)]),
                    gate: gate.clone(),
                    entered: entered.clone(),
                    answered: answered.clone(),
                }),
                reauth: Arc::new(crate::adapters::pam_reauth::testing::FakeReauth::new(&[])),
                mailer: Arc::new(crate::adapters::smtp::Disabled),
                audit: Arc::new(crate::adapters::syslog::Audit::new(false, false)),
            },
        );
        let logins = Arc::new(Logins::new(&handles));
        rt.block_on(async {
            let slow = {
                let logins = logins.clone();
                tokio::spawn(async move { logins.begin(&root(), origin("slowpoke")).await })
            };
            // The slow login is in its look-up, holding whatever thread it
            // blocks.
            while !entered.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
            // The quick one is a task too, so that it needs a worker.
            let quick = {
                let logins = logins.clone();
                tokio::spawn(async move { logins.begin(&root(), origin("alice")).await })
            };
            assert!(quick.await.unwrap().is_ok());
            assert!(
                !answered.load(Ordering::SeqCst),
                "alice's login waited for the slow look-up (multi-thread: {multi_thread})"
            );
            if let Ok(mut open) = gate.0.lock() {
                *open = true;
            }
            gate.1.notify_all();
            assert!(slow.await.unwrap().is_ok());
        });
    }
}
