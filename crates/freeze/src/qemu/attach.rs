//! An engine over a QEMU someone else started (`ktstr capture --qmp SOCKET --ram FILE`).
//!
//! The guest must have been started with its RAM in a shared file
//! (`-object memory-backend-file,share=on,mem-path=FILE -machine memory-backend=…`) and
//! a QMP socket. Nothing here owns the process: dropping an [`AttachedQemu`] leaves
//! QEMU running and, if this engine froze a guest that was running, thaws it first —
//! the guest is left as it was found.

use std::path::Path;
use std::time::Duration;

use guest_mem::ramfile::{self, QemuMachine};
use serde_json::{Value, json};

use super::{QMP_TIMEOUT, QmpClient, open_vcpu_counters, qmp_err, resume, stop_and_capture};
use crate::perf::VcpuCounters;
use crate::{Engine, EngineError, FreezeOutcome, GuestRam};

/// A running QEMU reached through its QMP socket and RAM file.
#[derive(Debug)]
pub struct AttachedQemu {
    qmp: QmpClient,
    ram: GuestRam,
    vcpus: usize,
    frozen: bool,
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
            .map_err(qmp_err("connect to QMP"))?;
        let cpus = qmp
            .execute("query-cpus-fast", None)
            .map_err(qmp_err("query-cpus-fast"))?;
        let vcpus = cpus.as_array().map_or(0, Vec::len);
        if vcpus == 0 {
            return Err(EngineError::Failed {
                step: "query-cpus-fast",
                detail: "QEMU reports no vCPUs".into(),
            });
        }
        let mem = qmp
            .execute("query-memory-size-summary", None)
            .map_err(qmp_err("query-memory-size-summary"))?;
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
            .map_err(qmp_err("qom-get /machine type"))?;
        let machine = machine_for(machine_type.as_str().unwrap_or_default())?;
        let ram = ramfile::map_ram_file(ram_file, &machine.layout(ram_size)).map_err(|e| {
            EngineError::Failed {
                step: "map guest RAM",
                detail: e.to_string(),
            }
        })?;
        let state = qmp.run_state().map_err(qmp_err("query-status"))?;
        let perf = open_vcpu_counters(&mut qmp);
        Ok(AttachedQemu {
            qmp,
            ram,
            vcpus,
            frozen: false,
            was_running: state == "running",
            perf,
        })
    }

    /// The QMP session.
    pub fn qmp(&mut self) -> &mut QmpClient {
        &mut self.qmp
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

    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError> {
        stop_and_capture(
            &mut self.qmp,
            timeout,
            self.vcpus,
            &self.perf,
            &mut self.frozen,
        )
    }

    fn thaw(&mut self) -> Result<(), EngineError> {
        resume(&mut self.qmp, &mut self.frozen)
    }

    fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Empty: the console belongs to whoever started QEMU.
    fn console_tail(&self) -> String {
        String::new()
    }
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
