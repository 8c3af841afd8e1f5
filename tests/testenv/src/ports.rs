//! Ports for the processes the tests start, reserved until they are done.
//!
//! The usual "bind to port 0, read the port, close it, pass it on" races:
//! until the process binds it, the kernel may hand the same port to any
//! other socket on the machine. It hands out its ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768–60999 by default) to every
//! outgoing connection, and the tests open hundreds (clients of the API
//! server, etcd's own clients), so on a busy machine a port picked that way
//! is sometimes taken by a connection before etcd or the controller binds
//! it.
//!
//! So ports come from [`RANGE`], below the ephemeral range (and below the
//! NodePort range, 30000–32767), where the kernel never picks on its own,
//! and each is reserved with an advisory lock on a file named after it
//! under `$TMPDIR/kseal-testenv-ports/`. Test threads and test processes
//! running at once (cargo runs test binaries one after another, but the
//! tests of one binary in parallel, and `cargo xtask` may run beside them)
//! never get the same port, and a reservation ends when its [`Port`] is
//! dropped, also when the process dies: the kernel drops the lock with the
//! file descriptor (and with any copy a child being spawned holds until its
//! exec closes it, so a release may take a moment to show).

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rand::Rng;

/// Where reserved ports come from: below the kernel's ephemeral range and
/// Kubernetes' NodePort range.
pub const RANGE: Range<u16> = 20_000..30_000;

/// A TCP port on this machine that no other user of this module holds,
/// free when it was reserved. Keep it as long as the process that listens
/// on it may run (across restarts too).
#[derive(Debug)]
pub struct Port {
    number: u16,
    /// Holds the lock; released when dropped.
    _lock: File,
}

impl Port {
    /// The port number.
    pub fn get(&self) -> u16 {
        self.number
    }
}

/// Reserves a free port from [`RANGE`].
///
/// Errors when the lock directory cannot be made, or when no port in the
/// range is both unlocked and free (after trying every one).
pub fn reserve() -> Result<Port> {
    reserve_in(RANGE)
}

/// Reserves a free port from `range` (not empty), trying each at most once
/// from a random start.
fn reserve_in(range: Range<u16>) -> Result<Port> {
    let dir = lock_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let size = range.end.saturating_sub(range.start).max(1);
    let start = rand::thread_rng().gen_range(0..size);
    for offset in 0..size {
        let number = range.start + (start + offset) % size;
        let path = dir.join(number.to_string());
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if lock.try_lock().is_err() {
            continue;
        }
        // Held by nobody of ours; is it free for everyone else too? A
        // wildcard bind fails if anything listens on the port at any
        // address of this machine.
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, number)).is_ok() {
            return Ok(Port {
                number,
                _lock: lock,
            });
        }
    }
    bail!(
        "no free port in {}..{} (locks in {})",
        range.start,
        range.end,
        dir.display()
    )
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("kseal-testenv-ports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_free_and_released_on_drop() {
        let ports: Vec<Port> = (0..20).map(|_| reserve().unwrap()).collect();
        let mut numbers: Vec<u16> = ports.iter().map(Port::get).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ports.len(), "distinct");
        for port in &ports {
            assert!(RANGE.contains(&port.get()));
            // Free for the process it is meant for.
            drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port.get())).unwrap());
            // Held: another lock on its file fails while it is reserved.
            let again = File::options()
                .write(true)
                .open(lock_dir().join(port.get().to_string()))
                .unwrap();
            assert!(again.try_lock().is_err(), "{} is locked", port.get());
        }
        let number = ports[0].get();
        drop(ports);
        let again = File::options()
            .write(true)
            .open(lock_dir().join(number.to_string()))
            .unwrap();
        assert!(
            within_a_while(|| again.try_lock().is_ok()),
            "released on drop"
        );
    }

    /// Whether `check` holds within 10 s. A lock outlives its `Port` for as
    /// long as a child another thread is spawning holds a copy of the
    /// descriptor (from fork until exec closes it), so a release is seen
    /// soon, not at once.
    fn within_a_while(mut check: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn a_port_in_use_or_held_is_skipped() {
        // Two neighbours: one an outsider listens on (without a lock), one
        // held by a reservation. Neither is handed out again.
        let held = reserve().unwrap();
        let number = held.get();
        let outside = reserve().unwrap();
        let outside_number = outside.get();
        let _listener = TcpListener::bind((Ipv4Addr::LOCALHOST, outside_number)).unwrap();
        drop(outside);
        for range in [number..number + 1, outside_number..outside_number + 1] {
            assert!(reserve_in(range.clone()).is_err(), "{range:?}");
        }
        drop(held);
        assert!(within_a_while(
            || reserve_in(number..number + 1).is_ok_and(|port| port.get() == number)
        ));
    }
}
