//! Who holds a lease, and whether that process still runs: the identity a lease records and the probe
//! that lets a process on the same machine take over the lease of a holder that died.
//!
//! A holder is named by host, pid, the process's start and a random instance id. On Linux the start is
//! the process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), recorded with the
//! boot id (`/proc/sys/kernel/random/boot_id`) and the pid namespace (`/proc/self/ns/pid`): the same pid
//! with the same start time in the same boot and namespace is the same process; the same pid with another
//! start time is a later process that reused the number. Everything the probe cannot establish counts as
//! "cannot tell", and "cannot tell" never takes a lease over: the lease's time-to-live decides.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The process that holds (or held) a lease.
///
/// [`Display`](fmt::Display) is `host:pid:instance`, the form older builds stored as the whole holder.
///
/// ```
/// let holder = sync_state::LeaseHolder::current();
/// assert_eq!(holder.pid, std::process::id());
/// assert!(holder.to_string().starts_with(&format!("{}:{}:", holder.host, holder.pid)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The host name of the machine the process runs on (the kernel's host name on Linux).
    pub host: String,
    /// The process id, meaningful on `host` only.
    pub pid: u32,
    /// Which process that pid was when the lease was taken; `None` where the platform cannot tell (and
    /// in leases written by older builds): such a holder is never taken for dead, its lease expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<ProcessStart>,
    /// A random id, different for every holder a process creates, so two holders never look alike in logs.
    pub instance: String,
}

/// When a process started, in terms that can be compared on the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessStart {
    /// The boot and pid namespace the start time counts in.
    #[serde(flatten)]
    pub scope: PidScope,
    /// Start time in clock ticks since boot (Linux: `/proc/<pid>/stat` field 22).
    pub ticks: u64,
}

/// Where pids and start times can be compared: one boot of one kernel, one pid namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PidScope {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); a new one after every boot.
    pub boot_id: String,
    /// The pid namespace (the target of `/proc/self/ns/pid`, e.g. `pid:[4026531836]`): a container has
    /// its own, and a pid in one says nothing about a process in another.
    pub pid_namespace: String,
}

/// The machine a probe runs on, as lease holders started there record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Its host name.
    pub host: String,
    /// Where its pids can be compared; `None` when the probe cannot inspect processes.
    pub pids: Option<PidScope>,
}

/// What a probe found under a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    /// A process runs under the pid, started at `start_ticks` (clock ticks since boot).
    Running {
        /// Its start time.
        start_ticks: u64,
    },
    /// No process has the pid (or only a zombie, a process that ended and was not yet reaped).
    Gone,
    /// The probe cannot tell (no `/proc`, not permitted, not Linux).
    Unknown,
}

/// Inspects processes of the machine it runs on. [`SystemProbe`] is the real one; tests inject their own
/// through [`StoreOptions::process_probe`](crate::StoreOptions::process_probe) to simulate a holder that
/// died or a pid that was reused.
pub trait ProcessProbe: Send + Sync + fmt::Debug {
    /// This machine: its host name and where its pids can be compared.
    fn machine(&self) -> Machine;

    /// What runs under `pid` on this machine now.
    fn process(&self, pid: u32) -> ProcessStatus;
}

/// The operating system's view: `/proc` and `kill(pid, 0)` on Linux; elsewhere the host name only, so
/// every holder's liveness is unknown and leases expire by their time-to-live.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl ProcessProbe for SystemProbe {
    fn machine(&self) -> Machine {
        system::machine()
    }

    fn process(&self, pid: u32) -> ProcessStatus {
        system::process(pid)
    }
}

impl LeaseHolder {
    /// The holder identity of this process, from the operating system, with a fresh instance id. Make it
    /// once per run and keep it: it names this run's leases in logs and in other processes' errors.
    pub fn current() -> Self {
        Self::current_with(&SystemProbe)
    }

    /// The holder identity of this process as `probe` sees it, with a fresh instance id.
    pub fn current_with(probe: &dyn ProcessProbe) -> Self {
        let machine = probe.machine();
        let pid = std::process::id();
        let start = match (machine.pids, probe.process(pid)) {
            (Some(scope), ProcessStatus::Running { start_ticks }) => Some(ProcessStart { scope, ticks: start_ticks }),
            _ => None,
        };
        let instance = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Self { host: machine.host, pid, start, instance }
    }

    /// Reads the `host:pid:instance` text older builds stored as the holder; the start is unknown.
    pub(crate) fn parse_legacy(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, ':');
        let instance = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next().filter(|host| !host.is_empty())?;
        Some(Self { host: host.to_owned(), pid, start: None, instance: instance.to_owned() })
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.instance)
    }
}

/// What became of a lease holder, as far as this machine can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Its process still runs (or it may: another host, or the probe cannot tell).
    NotKnownDead,
    /// Its process ended; the reason says how that is known.
    Dead(DeathEvidence),
}

/// How a holder is known to be dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeathEvidence {
    /// No process has its pid.
    Gone,
    /// Its pid belongs to a process with another start time.
    PidReused { recorded_ticks: u64, current_ticks: u64 },
}

/// Judges a holder: dead only when it ran on this machine, in this boot and pid namespace, and its pid
/// is free or taken by a process that started at another time.
pub(crate) fn liveness(holder: &LeaseHolder, probe: &dyn ProcessProbe) -> Liveness {
    let Some(start) = &holder.start else {
        return Liveness::NotKnownDead;
    };
    let machine = probe.machine();
    // A different boot id is a reboot or another machine of the same name; the two cannot be told apart.
    if machine.host != holder.host || machine.pids.as_ref() != Some(&start.scope) {
        return Liveness::NotKnownDead;
    }
    match probe.process(holder.pid) {
        ProcessStatus::Gone => Liveness::Dead(DeathEvidence::Gone),
        ProcessStatus::Running { start_ticks } if start_ticks != start.ticks => {
            Liveness::Dead(DeathEvidence::PidReused { recorded_ticks: start.ticks, current_ticks: start_ticks })
        }
        ProcessStatus::Running { .. } | ProcessStatus::Unknown => Liveness::NotKnownDead,
    }
}

#[cfg(target_os = "linux")]
mod system {
    //! Linux: the host name, boot id and pid namespace from `/proc`, a pid's existence from
    //! `kill(pid, 0)` and its start time from `/proc/<pid>/stat`.

    use std::fs;

    use rustix::io::Errno;
    use rustix::process::{Pid, test_kill_process};

    use super::{Machine, PidScope, ProcessStatus};

    pub(super) fn machine() -> Machine {
        let host = read_trimmed("/proc/sys/kernel/hostname");
        let scope = (|| {
            let boot_id = read_trimmed("/proc/sys/kernel/random/boot_id")?;
            let pid_namespace = fs::read_link("/proc/self/ns/pid").ok()?.to_str()?.to_owned();
            Some(PidScope { boot_id, pid_namespace })
        })();
        match host {
            Some(host) => Machine { host, pids: scope },
            // Without the kernel's host name, a holder's host cannot be recognised as this one.
            None => Machine { host: super::fallback_host(), pids: None },
        }
    }

    pub(super) fn process(pid: u32) -> ProcessStatus {
        let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return ProcessStatus::Unknown;
        };
        // `kill(pid, 0)` rather than `/proc` alone: `/proc` mounted with `hidepid=2` hides other users'
        // processes, which must not read as gone. EPERM means the process exists.
        match test_kill_process(raw) {
            Ok(()) | Err(Errno::PERM) => {}
            Err(Errno::SRCH) => return ProcessStatus::Gone,
            Err(_) => return ProcessStatus::Unknown,
        }
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => parse_stat(&stat).unwrap_or(ProcessStatus::Unknown),
            // It exists but cannot be inspected: it may well be the holder.
            Err(_) => ProcessStatus::Unknown,
        }
    }

    /// Field 3 (state) and field 22 (start time) of `/proc/<pid>/stat`. The command name (field 2) is in
    /// parentheses and may itself contain spaces and `)`, so fields are counted after the last `)`.
    pub(super) fn parse_stat(stat: &str) -> Option<ProcessStatus> {
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?;
        // Fields 4 to 21 lie between the state and the start time.
        let start_ticks = fields.nth(18)?.parse().ok()?;
        // A zombie has ended; only its exit status waits for its parent.
        if state == "Z" || state == "X" {
            return Some(ProcessStatus::Gone);
        }
        Some(ProcessStatus::Running { start_ticks })
    }

    fn read_trimmed(path: &str) -> Option<String> {
        fs::read_to_string(path).ok().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty())
    }
}

#[cfg(not(target_os = "linux"))]
mod system {
    //! Elsewhere: the host name from the environment; processes cannot be inspected.

    use super::{Machine, ProcessStatus};

    pub(super) fn machine() -> Machine {
        Machine { host: super::fallback_host(), pids: None }
    }

    pub(super) fn process(_pid: u32) -> ProcessStatus {
        ProcessStatus::Unknown
    }
}

/// The host name from the environment, for display when the kernel cannot be asked.
fn fallback_host() -> String {
    ["HOSTNAME", "COMPUTERNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().map(|host| host.trim().to_owned()).filter(|host| !host.is_empty()))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Machine, ProcessStatus);

    impl ProcessProbe for Fixed {
        fn machine(&self) -> Machine {
            self.0.clone()
        }
        fn process(&self, _pid: u32) -> ProcessStatus {
            self.1
        }
    }

    fn scope(boot: &str, namespace: &str) -> PidScope {
        PidScope { boot_id: boot.to_owned(), pid_namespace: namespace.to_owned() }
    }

    fn holder(host: &str, start: Option<ProcessStart>) -> LeaseHolder {
        LeaseHolder { host: host.to_owned(), pid: 42, start, instance: "abcd".to_owned() }
    }

    fn here(status: ProcessStatus) -> Fixed {
        Fixed(Machine { host: "here".to_owned(), pids: Some(scope("boot-1", "pid:[1]")) }, status)
    }

    fn started(ticks: u64) -> Option<ProcessStart> {
        Some(ProcessStart { scope: scope("boot-1", "pid:[1]"), ticks })
    }

    #[test]
    fn a_local_holder_whose_pid_is_free_is_dead() {
        let verdict = liveness(&holder("here", started(100)), &here(ProcessStatus::Gone));
        assert_eq!(verdict, Liveness::Dead(DeathEvidence::Gone));
    }

    #[test]
    fn a_local_holder_whose_pid_started_at_another_time_is_dead() {
        let verdict = liveness(&holder("here", started(100)), &here(ProcessStatus::Running { start_ticks: 250 }));
        assert_eq!(verdict, Liveness::Dead(DeathEvidence::PidReused { recorded_ticks: 100, current_ticks: 250 }));
    }

    #[test]
    fn a_local_holder_that_still_runs_is_not_dead() {
        let verdict = liveness(&holder("here", started(100)), &here(ProcessStatus::Running { start_ticks: 100 }));
        assert_eq!(verdict, Liveness::NotKnownDead);
    }

    #[test]
    fn anything_the_probe_cannot_establish_is_not_dead() {
        let gone = ProcessStatus::Gone;
        let cases = [
            ("another host", holder("there", started(100)), here(gone)),
            ("unknown start", holder("here", None), here(gone)),
            ("probe cannot tell", holder("here", started(100)), here(ProcessStatus::Unknown)),
            (
                "another boot",
                holder("here", Some(ProcessStart { scope: scope("boot-0", "pid:[1]"), ticks: 100 })),
                here(gone),
            ),
            (
                "another pid namespace",
                holder("here", Some(ProcessStart { scope: scope("boot-1", "pid:[2]"), ticks: 100 })),
                here(gone),
            ),
            (
                "a probe without pid scope",
                holder("here", started(100)),
                Fixed(Machine { host: "here".to_owned(), pids: None }, gone),
            ),
        ];
        for (case, holder, probe) in cases {
            assert_eq!(liveness(&holder, &probe), Liveness::NotKnownDead, "{case}");
        }
    }

    #[test]
    fn the_legacy_text_parses_and_displays_the_same() {
        let holder = LeaseHolder::parse_legacy("build-agent-7:4242:feedbeef").unwrap();
        assert_eq!(
            holder,
            LeaseHolder { host: "build-agent-7".into(), pid: 4242, start: None, instance: "feedbeef".into() }
        );
        assert_eq!(holder.to_string(), "build-agent-7:4242:feedbeef");
        for bad in ["child-0", "host:notapid:x", ":42:x", ""] {
            assert_eq!(LeaseHolder::parse_legacy(bad), None, "{bad}");
        }
    }

    #[test]
    fn holders_of_one_process_differ_only_in_their_instance() {
        let probe = here(ProcessStatus::Running { start_ticks: 7 });
        let (a, b) = (LeaseHolder::current_with(&probe), LeaseHolder::current_with(&probe));
        assert_ne!(a.instance, b.instance);
        assert_eq!(LeaseHolder { instance: b.instance.clone(), ..a.clone() }, b);
        assert_eq!(a.start, started(7));
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use super::super::{ProcessStatus, system};
        use crate::{LeaseHolder, ProcessProbe, SystemProbe};

        #[test]
        fn the_stat_line_is_read_after_the_last_parenthesis() {
            // Fields 1–22 of a real line, with a command name holding spaces and `)`.
            let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 12345";
            assert_eq!(system::parse_stat(stat), Some(ProcessStatus::Running { start_ticks: 987654 }));
            let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 0";
            assert_eq!(system::parse_stat(zombie), Some(ProcessStatus::Gone));
            assert_eq!(system::parse_stat("4242 (x) S 1 2"), None);
        }

        #[test]
        fn the_system_probe_sees_this_process_running_and_an_exited_child_gone() {
            let me = LeaseHolder::current();
            let start = me.start.clone().expect("Linux with /proc tells this process's start");
            assert_eq!(SystemProbe.process(me.pid), ProcessStatus::Running { start_ticks: start.ticks });
            assert_eq!(super::liveness(&me, &SystemProbe), super::Liveness::NotKnownDead);

            let mut child = std::process::Command::new("true").spawn().expect("`true` runs");
            let pid = child.id();
            child.wait().expect("the child exits");
            // Reaped: the pid is free until the kernel hands it out again after wrapping around.
            let dead = LeaseHolder { pid, ..me };
            // (Were it handed out, the new process's start time would differ: dead all the same.)
            let verdict = super::liveness(&dead, &SystemProbe);
            assert!(matches!(verdict, super::Liveness::Dead(_)), "pid {pid}: {verdict:?}");
        }

        #[test]
        fn an_unreaped_child_counts_as_gone() {
            let mut child = std::process::Command::new("true").spawn().expect("`true` runs");
            let pid = child.id();
            // Wait until it has ended, without reaping it: the zombie state shows in /proc.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while SystemProbe.process(pid) != ProcessStatus::Gone {
                assert!(std::time::Instant::now() < deadline, "child {pid} never ended");
                std::thread::yield_now();
            }
            child.wait().expect("reaped");
        }
    }
}
