//! Write watchpoints on the QEMU engine, through QEMU's gdbstub.
//!
//! With [`QemuConfig::gdbstub`](super::QemuConfig::gdbstub) the engine starts QEMU with
//! `-gdb unix:<private dir>/gdb.sock` and attaches a [`GdbClient`] at launch (QEMU pauses
//! the guest for a new debugger; the engine continues it). A watchpoint is `Z2` on the
//! linear address: under TCG QEMU's own watchpoints, under KVM the debug registers. When
//! a vCPU writes the address, QEMU stops it just past the writing instruction, pauses
//! every other vCPU, and sends `T05thread:NN;watch:ADDR;`; [`WatchEngine::wait_write`]
//! then reads every vCPU's registers over QMP as [`Engine::freeze`] does. The run state
//! is `debug` (after a QMP freeze, `paused`).
//!
//! How the stub constrains the engine (measured on QEMU 10.0.2, see [`super::gdb`]):
//! - **No packet to a running guest.** QEMU stops a running guest on any byte but the
//!   interrupt and drops the byte, so arming or disarming a running guest interrupts it,
//!   edits the watchpoint and continues it (≈ 0.4 ms under TCG on the lab's guest).
//! - **One stop reply per stop, only after `c`.** A QMP `stop` of a continued guest
//!   shows on the stub as `T02`, which [`Engine::freeze`] consumes. [`Engine::thaw`]
//!   continues through the stub (`c`), never QMP `cont`: after a QMP `cont` QEMU would
//!   stop at the next hit without sending a stop reply (run state `debug`, nobody told).
//!   Anyone resuming the guest through [`QemuEngine::qmp`] breaks the watch that way.
//! - **A write racing a freeze.** If the watched write stops the guest just before the
//!   QMP `stop` of a freeze, the stop reply [`Engine::freeze`] reads is that hit: the
//!   freeze succeeds (the guest is frozen at the write) and the next
//!   [`WatchEngine::wait_write`], while still frozen, returns the hit; a thaw drops it.
//!   If instead the `stop` comes first, QEMU drops the vCPU's debug request: that write
//!   is not reported (the caller can compare the watched value after the thaw).
//! - Arming or disarming while a hit of the watchpoint being replaced is in flight: the
//!   hit is dropped, as if the replacement had come first, and the guest continues.
//! - **Reports of a watchpoint that is gone.** QEMU (TCG) keeps a vCPU's pending hit as
//!   a pointer to the watchpoint (`cpu->watchpoint_hit`), clears it only for the vCPU
//!   whose hit it reports, and does not clear it when `z2` frees the watchpoint. A hit
//!   that is never reported (another vCPU's was, or the vCPU was paused between QEMU's
//!   detection and its re-execution of the store) leaves the pointer dangling, and that
//!   vCPU's next access to a watched page (a later watchpoint) is reported as a hit at
//!   whatever the freed memory holds (seen once in about 25 hits of the bench:
//!   `watch:56190f5e3740`, a QEMU heap address). The report clears the pointer;
//!   [`WatchEngine::wait_write`] counts it ([`QemuEngine::spurious_watch_stops`]),
//!   continues the guest and waits on.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::gdb::{GdbClient, GdbError, SIGQUIT, StopReply};
use super::{AttachedQemu, ConnectionError, QemuEngine, conn_err};
use crate::Engine;
use crate::watchpoint::{WatchEngine, WatchHit, WriteWatch};
use crate::{EngineError, FreezeOutcome};

/// Bound on a stop reply the stub owes (after an interrupt or a QMP `stop`, QEMU sends
/// it once every vCPU is paused: well under a millisecond here).
const STOP_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one command's answer from the stub.
const GDB_TIMEOUT: Duration = Duration::from_secs(10);

/// When a watchpoint hit reached the host, for latency figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitTiming {
    /// Host wall clock when the stop reply was parsed (comparable with the timestamps
    /// of QMP events, which QEMU takes from the same clock).
    pub stop_reply: SystemTime,
    /// From the stop reply to every vCPU's registers read.
    pub capture: Duration,
}

/// The engine's session with QEMU's gdbstub.
#[derive(Debug)]
pub(super) struct GdbSession {
    client: GdbClient,
    /// The stub continued the guest and owes a stop reply when it stops.
    running: bool,
    armed: Option<WriteWatch>,
    /// A hit that a freeze found instead of its own stop (see the module docs).
    raced: Option<WatchHit>,
    last_hit: Option<HitTiming>,
    /// Watchpoint reports for addresses never armed, continued past.
    spurious: u64,
}

impl ConnectionError for GdbError {
    const NAME: &'static str = "gdb";
    fn is_closed(&self) -> bool {
        matches!(self, GdbError::Closed)
    }
}

fn covers(watch: &WriteWatch, addr: u64) -> bool {
    addr >= watch.addr && addr - watch.addr < watch.len.bytes()
}

impl GdbSession {
    /// Connects to the stub, checks it reports the guest stopped (QEMU pauses the guest
    /// for a new debugger), and continues it.
    pub(super) fn attach(path: &Path, timeout: Duration) -> Result<Self, EngineError> {
        let mut client = GdbClient::connect(path, timeout).map_err(conn_err("attach gdb"))?;
        client.timeout = GDB_TIMEOUT;
        let halt = client.halt_reason().map_err(conn_err("gdb halt reason"))?;
        if !matches!(halt, StopReply::Signal { .. }) {
            return Err(EngineError::Failed {
                step: "gdb halt reason",
                detail: format!("the stub reports {halt:?}"),
            });
        }
        client.cont().map_err(conn_err("gdb continue"))?;
        Ok(GdbSession {
            client,
            running: true,
            armed: None,
            raced: None,
            last_hit: None,
            spurious: 0,
        })
    }

    /// The stop reply the stub owes; an error when it does not come.
    fn owed_stop(&mut self, step: &'static str) -> Result<StopReply, EngineError> {
        let stop = self
            .client
            .wait_stop(STOP_REPLY_TIMEOUT)
            .map_err(conn_err(step))?
            .ok_or_else(|| EngineError::Failed {
                step,
                detail: format!("no stop reply from the gdbstub within {STOP_REPLY_TIMEOUT:?}"),
            })?;
        self.running = false;
        if let StopReply::Exited { .. } | StopReply::Terminated { .. } = stop {
            return Err(EngineError::GuestExited(format!("{step}: {stop:?}")));
        }
        Ok(stop)
    }

    /// [`Engine::freeze`] with the stub attached: QMP `stop`, the stop reply it causes
    /// (or the hit that came first), the registers.
    pub(super) fn freeze(
        &mut self,
        vm: &mut AttachedQemu,
        timeout: Duration,
    ) -> Result<FreezeOutcome, EngineError> {
        let elapsed = vm.stop(timeout)?;
        let raced = if self.running {
            self.owed_stop("freeze: gdb stop reply")?.write_watch_hit()
        } else {
            None
        };
        let out = vm.capture(elapsed)?;
        if let Some((vcpu, addr)) = raced
            && let Some(watch) = self.armed.filter(|w| covers(w, addr))
        {
            self.raced = Some(WatchHit {
                watch,
                vcpu,
                freeze: out.clone(),
            });
        }
        Ok(out)
    }

    /// [`Engine::thaw`] with the stub attached: `c` through the stub. QEMU acknowledges
    /// the packet before it resumes the guest, in the same main-loop step, so QMP
    /// commands sent after this returns see the guest running.
    pub(super) fn thaw(&mut self, vm: &mut AttachedQemu) -> Result<(), EngineError> {
        if self.running {
            if vm.frozen {
                // The stub never reported the stop (a freeze that failed reading its
                // reply): QMP is the only way left to resume.
                vm.thaw()?;
            }
            return Ok(());
        }
        self.raced = None;
        self.client.cont().map_err(conn_err("thaw: gdb continue"))?;
        self.running = true;
        vm.frozen = false;
        Ok(())
    }

    /// Runs `edit` on a stopped guest: interrupts a running one first and continues it
    /// after (even when `edit` failed, so a refused watchpoint does not leave the guest
    /// stopped).
    fn edit(
        &mut self,
        step: &'static str,
        frozen: &mut bool,
        edit: impl FnOnce(&mut Self) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let was_running = self.running;
        if was_running {
            self.client.interrupt().map_err(conn_err(step))?;
            *frozen = true;
            // A hit of the watchpoint being replaced, if one crossed the interrupt, is
            // dropped here (module docs).
            self.owed_stop(step)?;
        }
        let res = edit(self);
        if was_running {
            self.client.cont().map_err(conn_err(step))?;
            self.running = true;
            *frozen = false;
        }
        res
    }
}

impl QemuEngine {
    /// Whether the engine has QEMU's gdbstub (write watchpoints available).
    pub fn has_gdbstub(&self) -> bool {
        self.gdb.is_some()
    }

    /// When the last watchpoint hit reached the host.
    pub fn last_hit_timing(&self) -> Option<HitTiming> {
        self.gdb.as_ref().and_then(|g| g.last_hit)
    }

    /// How many watchpoint reports named an address that was not armed (QEMU's stale
    /// pointer, see the module docs); `wait_write` continued past each.
    pub fn spurious_watch_stops(&self) -> u64 {
        self.gdb.as_ref().map_or(0, |g| g.spurious)
    }
}

fn no_gdbstub(step: &'static str) -> EngineError {
    EngineError::Failed {
        step,
        detail: "no gdbstub: launch with QemuConfig::gdbstub".into(),
    }
}

impl WatchEngine for QemuEngine {
    /// `z2` the previous watchpoint, `Z2` this one; a running guest is interrupted for
    /// it and continued.
    fn arm_write_watch(&mut self, watch: WriteWatch) -> Result<(), EngineError> {
        let step = "arm a write watchpoint";
        self.check_alive(step)?;
        let frozen = &mut self.session.frozen;
        let gdb = self.gdb.as_mut().ok_or_else(|| no_gdbstub(step))?;
        gdb.edit(step, frozen, |g| {
            if let Some(old) = g.armed.take() {
                g.client
                    .remove_write_watch(old.addr, old.len.bytes())
                    .map_err(conn_err("z2 (the previous watchpoint)"))?;
            }
            g.client
                .insert_write_watch(watch.addr, watch.len.bytes())
                .map_err(conn_err("Z2"))?;
            g.armed = Some(watch);
            Ok(())
        })
    }

    /// `z2`; nothing to do (and no interruption) when nothing is armed.
    fn disarm_write_watch(&mut self) -> Result<(), EngineError> {
        let step = "disarm the write watchpoint";
        self.check_alive(step)?;
        let frozen = &mut self.session.frozen;
        let gdb = self.gdb.as_mut().ok_or_else(|| no_gdbstub(step))?;
        if gdb.armed.is_none() {
            return Ok(());
        }
        gdb.edit(step, frozen, |g| {
            if let Some(old) = g.armed.take() {
                g.client
                    .remove_write_watch(old.addr, old.len.bytes())
                    .map_err(conn_err("z2"))?;
            }
            Ok(())
        })
    }

    /// Waits for the stub's stop reply. The hit's [`FreezeOutcome::elapsed`] is zero:
    /// QEMU reports only once every vCPU is paused, so the host cannot time the write.
    /// A stop for another reason leaves the guest frozen and is an error.
    fn wait_write(&mut self, timeout: Duration) -> Result<Option<WatchHit>, EngineError> {
        let step = "wait for a write";
        self.check_alive(step)?;
        let frozen = self.session.frozen;
        let gdb = self.gdb.as_mut().ok_or_else(|| no_gdbstub(step))?;
        if frozen {
            return match gdb.raced.take() {
                Some(hit) => Ok(Some(hit)),
                None => Err(EngineError::Failed {
                    step,
                    detail: "the guest is frozen: thaw it first".into(),
                }),
            };
        }
        let Some(watch) = gdb.armed else {
            return Err(EngineError::Failed {
                step,
                detail: "no write watchpoint is armed".into(),
            });
        };
        let deadline = Instant::now() + timeout;
        let (stop_reply, at, vcpu) = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(stop) = gdb.client.wait_stop(remaining).map_err(conn_err(step))? else {
                return Ok(None);
            };
            let stop_reply = SystemTime::now();
            let at = Instant::now();
            gdb.running = false;
            self.session.frozen = true;
            match stop.write_watch_hit() {
                Some((vcpu, addr)) if covers(&watch, addr) => break (stop_reply, at, vcpu),
                Some(_) => {
                    // A watchpoint report for an address never armed: QEMU's stale
                    // pointer (module docs). Not a write to the watch: continue.
                    gdb.spurious += 1;
                    gdb.client.cont().map_err(conn_err(step))?;
                    gdb.running = true;
                    self.session.frozen = false;
                }
                None => {
                    return Err(match stop {
                        StopReply::Exited { .. }
                        | StopReply::Terminated { .. }
                        | StopReply::Signal {
                            signal: SIGQUIT, ..
                        } => EngineError::GuestExited(format!("{step}: the stub reports {stop:?}")),
                        other => EngineError::Failed {
                            step,
                            detail: format!(
                                "the guest stopped for another reason than the watched write \
                                 (it stays frozen): {other:?}"
                            ),
                        },
                    });
                }
            }
        };
        let freeze = self.session.capture(Duration::ZERO)?;
        if let Some(g) = self.gdb.as_mut() {
            g.last_hit = Some(HitTiming {
                stop_reply,
                capture: at.elapsed(),
            });
        }
        Ok(Some(WatchHit {
            watch,
            vcpu,
            freeze,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchpoint::WatchLen;

    #[test]
    fn a_watch_covers_its_bytes_only() {
        let w = WriteWatch::new(0x1000, WatchLen::B8).unwrap();
        assert!(covers(&w, 0x1000));
        assert!(covers(&w, 0x1007));
        assert!(!covers(&w, 0x1008));
        assert!(!covers(&w, 0xfff));
    }
}
