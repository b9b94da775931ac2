//! The one place a `qemu-system-x86_64` command line is put together: the engine, the
//! KVM probe, the quick boot and tests that start QEMU as a user would all start from
//! [`QemuCommand`], so the flags every guest needs (no default devices, no user config,
//! no display, no reboot, the accelerator and its CPU model) are written once.

use super::accel::Accel;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};

/// A QEMU command line under construction. Every method appends; finish with
/// [`QemuCommand::into_command`].
#[derive(Debug)]
pub struct QemuCommand {
    cmd: Command,
}

impl QemuCommand {
    /// `qemu -nodefaults -no-user-config -display none -no-reboot` with the accelerator
    /// (`-accel kvm -cpu host` or `-accel tcg,thread=multi -cpu max`).
    pub fn new(qemu: &Path, accel: Accel) -> Self {
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
        };
        QemuCommand { cmd }
    }

    /// `-smp N -m M`.
    pub fn size(mut self, vcpus: u32, memory_mib: u64) -> Self {
        self.cmd
            .arg("-smp")
            .arg(vcpus.to_string())
            .arg("-m")
            .arg(format!("{memory_mib}M"));
        self
    }

    /// Guest RAM in a file the host maps too (`memory-backend-file`, shared).
    pub fn shared_ram(mut self, memory_mib: u64, file: &Path) -> Self {
        let mut backend = OsString::from(format!(
            "memory-backend-file,id=ram,size={memory_mib}M,share=on,mem-path="
        ));
        backend.push(file);
        self.cmd
            .args(["-machine", "pc,memory-backend=ram", "-object"])
            .arg(backend);
        self
    }

    /// A QMP server on a unix socket that does not wait for a client.
    pub fn qmp_socket(self, socket: &Path) -> Self {
        self.unix_server("-qmp", socket)
    }

    /// A gdbstub on a unix socket that does not wait for a client.
    pub fn gdb_socket(self, socket: &Path) -> Self {
        self.unix_server("-gdb", socket)
    }

    /// `OPTION unix:SOCKET,server=on,wait=off`.
    fn unix_server(mut self, option: &str, socket: &Path) -> Self {
        let mut arg = OsString::from("unix:");
        arg.push(socket);
        arg.push(",server=on,wait=off");
        self.cmd.arg(option).arg(arg);
        self
    }

    /// The first serial port on QEMU's stdout (signals on the terminal are not QEMU's).
    pub fn serial_stdout(mut self) -> Self {
        self.cmd.args([
            "-chardev",
            "stdio,id=con,signal=off",
            "-serial",
            "chardev:con",
        ]);
        self
    }

    /// The first serial port written to a file.
    pub fn serial_file(mut self, file: &Path) -> Self {
        let mut arg = OsString::from("file:");
        arg.push(file);
        self.cmd.arg("-serial").arg(arg);
        self
    }

    /// `-kernel K [-initrd I] -append A`.
    pub fn boot(mut self, kernel: &Path, initrd: Option<&Path>, append: &str) -> Self {
        self.cmd.arg("-kernel").arg(kernel);
        if let Some(initrd) = initrd {
            self.cmd.arg("-initrd").arg(initrd);
        }
        self.cmd.arg("-append").arg(append);
        self
    }

    /// Any further arguments, as given.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// The finished command: stdin closed, stdout and stderr piped.
    pub fn into_command(mut self) -> Command {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: QemuCommand) -> Vec<String> {
        c.into_command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_command_starts_with_the_common_flags_and_the_accelerator() {
        let tcg = argv(QemuCommand::new(Path::new("q"), Accel::Tcg));
        assert_eq!(
            tcg,
            [
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-accel",
                "tcg,thread=multi",
                "-cpu",
                "max"
            ]
        );
        let kvm = argv(QemuCommand::new(Path::new("q"), Accel::Kvm));
        assert_eq!(&kvm[5..], ["-accel", "kvm", "-cpu", "host"]);
    }

    #[test]
    fn boot_without_initrd_and_sockets_are_spelled_as_qemu_expects() {
        let a = argv(
            QemuCommand::new(Path::new("q"), Accel::Tcg)
                .size(3, 512)
                .shared_ram(512, Path::new("/d/ram"))
                .qmp_socket(Path::new("/d/qmp.sock"))
                .gdb_socket(Path::new("/d/gdb.sock"))
                .boot(Path::new("/k"), None, "console=ttyS0"),
        );
        let tail = &a[9..];
        assert_eq!(
            tail,
            [
                "-smp",
                "3",
                "-m",
                "512M",
                "-machine",
                "pc,memory-backend=ram",
                "-object",
                "memory-backend-file,id=ram,size=512M,share=on,mem-path=/d/ram",
                "-qmp",
                "unix:/d/qmp.sock,server=on,wait=off",
                "-gdb",
                "unix:/d/gdb.sock,server=on,wait=off",
                "-kernel",
                "/k",
                "-append",
                "console=ttyS0"
            ]
        );
    }
}
