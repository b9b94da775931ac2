//! An engine over a running QEMU reached through its QMP socket and RAM file: one
//! someone else started (`ktstr capture --qmp SOCKET --ram FILE`, [`AttachedQemu::attach`]),
//! or the one a [`QemuEngine`](super::QemuEngine) launched (which attaches the same way and
//! adds the process, the console and the gdbstub).
//!
//! The guest must have been started with its RAM in a shared file
//! (`-object memory-backend-file,share=on,mem-path=FILE -machine memory-backend=…`) and
//! a QMP socket. Nothing here owns the process: dropping an [`AttachedQemu`] leaves
//! QEMU running and, if this engine froze a guest that was running when it attached,
//! thaws it first — the guest is left as it was found.

use std::path::Path;
use std::time::{Duration, Instant};

use guest_mem::ramfile::{self, QemuMachine};
use serde_json::{Value, json};

use super::{QMP_TIMEOUT, QmpClient, conn_err, open_vcpu_counters, read_registers};
use crate::perf::VcpuCounters;
use crate::{Engine, EngineError, FreezeOutcome, GuestRam};

/// A running QEMU reached through its QMP socket and RAM file.
#[derive(Debug)]
pub struct AttachedQemu {
    pub(super) qmp: QmpClient,
    pub(super) ram: GuestRam,
    pub(super) vcpus: usize,
    pub(super) frozen: bool,
    /// The run state when we attached: only a guest we found running is thawed on drop.
    was_running: bool,
    /// Host perf counters on QEMU's vCPU threads, from the attach to each freeze.
    perf: VcpuCounters,
}

impl AttachedQemu {
    /// Connects to `qmp_socket` and maps `ram_file` with the layout of the machine QEMU
    /// reports (`pc` or `q35`) for the RAM size it reports.
    pub fn attach(qmp_socket: &Path, ram_file: &Path) -> Result<Self, EngineError> {
        let mut qmp = QmpClient::connect(qmp_socket, Duration::from_secs(10))
            .map_err(conn_err("connect to QMP"))?;
        let cpus = qmp
            .execute("query-cpus-fast", None)
            .map_err(conn_err("query-cpus-fast"))?;
        let vcpus = cpus.as_array().map_or(0, Vec::len);
        if vcpus == 0 {
            return Err(EngineError::Failed {
                step: "query-cpus-fast",
                detail: "QEMU reports no vCPUs".into(),
            });
        }
        let mem = qmp
            .execute("query-memory-size-summary", None)
            .map_err(conn_err("query-memory-size-summary"))?;
        let ram_size = mem
            .get("base-memory")
            .and_then(Value::as_u64)
            .ok_or_else(|| EngineError::Failed {
                step: "query-memory-size-summary",
                detail: format!("no base-memory in {mem}"),
            })?;
        let machine_type = qmp
            .execute(
                "qom-get",
                Some(json!({ "path": "/machine", "property": "type" })),
            )
            .map_err(conn_err("qom-get /machine type"))?;
        let machine = machine_for(machine_type.as_str().unwrap_or_default())?;
        let state = qmp.run_state().map_err(conn_err("query-status"))?;
        Self::over(qmp, ram_file, machine, ram_size, vcpus, state == "running")
    }

    /// Over the QEMU behind `qmp` whose RAM (`ram_size` bytes laid out as `machine` does)
    /// is in `ram_file`; the guest is thawed on drop if it was frozen here and
    /// `was_running`. Opens the perf counters on the vCPU threads.
    pub(super) fn over(
        mut qmp: QmpClient,
        ram_file: &Path,
        machine: QemuMachine,
        ram_size: u64,
        vcpus: usize,
        was_running: bool,
    ) -> Result<Self, EngineError> {
        // guest-mem maps it read-only: the host never writes guest RAM.
        let ram = ramfile::map_ram_file(ram_file, &machine.layout(ram_size)).map_err(|e| {
            EngineError::Failed {
                step: "map guest RAM",
                detail: e.to_string(),
            }
        })?;
        let perf = open_vcpu_counters(&mut qmp);
        Ok(AttachedQemu {
            qmp,
            ram,
            vcpus,
            frozen: false,
            was_running,
            perf,
        })
    }

    /// The QMP session.
    pub fn qmp(&mut self) -> &mut QmpClient {
        &mut self.qmp
    }

    /// QMP `stop` (answered once every vCPU is paused); returns its round trip and sets
    /// `frozen`.
    pub(super) fn stop(&mut self, timeout: Duration) -> Result<Duration, EngineError> {
        let start = Instant::now();
        self.qmp
            .execute_timeout("stop", None, timeout)
            .map_err(conn_err("stop"))?;
        self.frozen = true;
        Ok(start.elapsed())
    }

    /// The vCPU threads' perf counters, then every vCPU's registers (`info registers
    /// -a`), of a stopped guest.
    pub(super) fn capture(&mut self, elapsed: Duration) -> Result<FreezeOutcome, EngineError> {
        let vcpu_perf = self.perf.read();
        let mut regs = read_registers(&mut self.qmp)?;
        regs.resize(self.vcpus, None);
        Ok(FreezeOutcome {
            vcpus: regs,
            elapsed,
            vcpu_perf,
        })
    }
}

/// The RAM layout of a QEMU machine type name (`pc-i440fx-10.0`, `pc-q35-10.0`, ...).
fn machine_for(type_name: &str) -> Result<QemuMachine, EngineError> {
    if type_name.contains("q35") {
        Ok(QemuMachine::Q35)
    } else if type_name.contains("i440fx") || type_name.starts_with("pc-") || type_name == "pc" {
        Ok(QemuMachine::Pc)
    } else {
        Err(EngineError::Failed {
            step: "machine type",
            detail: format!("unsupported QEMU machine {type_name:?} (pc and q35 are)"),
        })
    }
}

impl Engine for AttachedQemu {
    fn guest_ram(&self) -> GuestRam {
        self.ram.clone()
    }

    fn vcpu_count(&self) -> usize {
        self.vcpus
    }

    /// QMP `stop`, then the perf counters and registers; the guest stays frozen when
    /// reading the registers fails.
    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError> {
        let elapsed = self.stop(timeout)?;
        self.capture(elapsed)
    }

    /// QMP `cont`; `frozen` is cleared once the guest runs again.
    fn thaw(&mut self) -> Result<(), EngineError> {
        self.qmp
            .execute_timeout("cont", None, QMP_TIMEOUT)
            .map_err(conn_err("cont"))?;
        self.frozen = false;
        Ok(())
    }

    fn is_frozen(&self) -> bool {
        self.frozen
    }

    // No console_tail: the console belongs to whoever started QEMU.
}

impl Drop for AttachedQemu {
    fn drop(&mut self) {
        if self.frozen && self.was_running {
            let _ = self.qmp.execute_timeout("cont", None, QMP_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types() {
        assert_eq!(
            machine_for("pc-i440fx-10.0-machine").unwrap(),
            QemuMachine::Pc
        );
        assert_eq!(
            machine_for("pc-q35-10.0-machine").unwrap(),
            QemuMachine::Q35
        );
        assert!(machine_for("microvm-machine").is_err());
    }
}
