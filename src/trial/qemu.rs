//! The command lines that boot the trial guest: QEMU (q35, each requested function
//! as `vfio-pci` on a PCI Express root port) or cloud-hypervisor.

use passthru_pci_ids::Bdf;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which VMM boots the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vmm {
    /// `qemu-system-x86_64`.
    Qemu,
    /// `cloud-hypervisor`.
    CloudHypervisor,
}

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accel {
    /// Hardware virtualisation (`/dev/kvm`).
    Kvm,
    /// QEMU's emulator (slow; no KVM needed).
    Tcg,
}

/// Everything one boot needs.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The VMM.
    pub vmm: Vmm,
    /// QEMU's accelerator (QEMU only).
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The host functions to pass through.
    pub devices: Vec<Bdf>,
    /// Where the guest's console goes.
    pub console: PathBuf,
    /// Where the guest's report (the protocol port) goes.
    pub report: PathBuf,
}

impl VmSpec {
    /// The guest serial device the report is written to: QEMU's second 16550
    /// (`ttyS1`; `ttyS0` is the console), cloud-hypervisor's only one (`ttyS0`;
    /// its console is the virtio console `hvc0`).
    pub fn report_port(&self) -> &'static str {
        match self.vmm {
            Vmm::Qemu => "ttyS1",
            Vmm::CloudHypervisor => "ttyS0",
        }
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let console = match self.vmm {
            Vmm::Qemu => "ttyS0",
            Vmm::CloudHypervisor => "hvc0",
        };
        // panic=-1: reboot at once on a panic, which -no-reboot turns into QEMU's
        // exit. passthru.port has a dot, so the kernel keeps it from init's
        // arguments; the guest reads it from /proc/cmdline.
        // no_timer_check under TCG: an emulated CPU on a busy host can miss the
        // window in which the kernel waits for the 8254 timer through the IO-APIC,
        // and the kernel then panics ("IO-APIC + timer doesn't work!",
        // arch/x86/kernel/apic/io_apic.c check_timer); seen on a second boot nested
        // in the VM harness, where it looked like a device that did not come back.
        let timer = match (self.vmm, self.accel) {
            (Vmm::Qemu, Accel::Tcg) => " no_timer_check",
            _ => "",
        };
        format!(
            "console={console} panic=-1 rdinit=/init passthru.port={}{timer}",
            self.report_port()
        )
    }

    /// The arguments (without the program) for the chosen VMM.
    pub fn argv(&self) -> Vec<String> {
        match self.vmm {
            Vmm::Qemu => self.qemu_argv(),
            Vmm::CloudHypervisor => self.ch_argv(),
        }
    }

    /// QEMU's arguments. Functions of one host slot stay together on one root port
    /// (function numbers kept, function 0 marked `multifunction=on`; a slot
    /// without function 0 has its functions renumbered from 0, since a guest only
    /// scans a slot whose function 0 answers).
    pub fn qemu_argv(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
        let (accel, cpu) = match self.accel {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg", "max"),
        };
        push(&["-accel", accel, "-cpu", cpu]);
        push(&["-machine", "q35", "-nodefaults", "-nographic", "-no-reboot"]);
        push(&["-m", &self.memory_mib.to_string(), "-smp", "1"]);
        push(&["-kernel", &self.kernel.display().to_string()]);
        push(&["-initrd", &self.initrd.display().to_string()]);
        push(&["-append", &self.cmdline()]);
        push(&["-serial", &format!("file:{}", self.console.display())]);
        push(&["-serial", &format!("file:{}", self.report.display())]);
        let mut slots: BTreeMap<(u16, u8, u8), Vec<Bdf>> = BTreeMap::new();
        for b in &self.devices {
            slots
                .entry((b.domain, b.bus, b.device))
                .or_default()
                .push(*b);
        }
        for (port, fns) in slots.values_mut().enumerate() {
            fns.sort();
            fns.dedup();
            let rp = format!("rp{port}");
            push(&[
                "-device",
                &format!("pcie-root-port,id={rp},chassis={},slot=0", port + 1),
            ]);
            let renumber = fns.first().is_some_and(|b| b.function != 0);
            for (i, b) in fns.iter().enumerate() {
                let f = if renumber { i as u8 } else { b.function };
                let mut dev = format!("vfio-pci,host={b},bus={rp},addr=0x0.{f:x}");
                if f == 0 && fns.len() > 1 {
                    dev.push_str(",multifunction=on");
                }
                push(&["-device", &dev]);
            }
        }
        a
    }

    /// cloud-hypervisor's arguments: the report on its 16550 (`--serial`), the
    /// console on the virtio console (`--console`), each function by its sysfs path.
    pub fn ch_argv(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "--kernel".to_string(),
            self.kernel.display().to_string(),
            "--initramfs".into(),
            self.initrd.display().to_string(),
            "--cmdline".into(),
            self.cmdline(),
            "--cpus".into(),
            "boot=1".into(),
            "--memory".into(),
            format!("size={}M", self.memory_mib),
            "--serial".into(),
            format!("file={}", self.report.display()),
            "--console".into(),
            format!("file={}", self.console.display()),
        ]
        .into();
        for b in &self.devices {
            a.push("--device".into());
            a.push(format!("path=/sys/bus/pci/devices/{b}/"));
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vmm: Vmm, devs: &[&str]) -> VmSpec {
        VmSpec {
            vmm,
            accel: Accel::Kvm,
            memory_mib: 1024,
            kernel: "/k".into(),
            initrd: "/i".into(),
            devices: devs.iter().map(|d| d.parse().unwrap()).collect(),
            console: "/t/console.log".into(),
            report: "/t/report.log".into(),
        }
    }

    fn devices(a: &[String]) -> Vec<&str> {
        a.windows(2)
            .filter(|w| w[0] == "-device")
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn gpu_and_audio_share_a_root_port_nvme_has_its_own() {
        let s = spec(Vmm::Qemu, &["0000:0b:00.1", "0000:0b:00.0", "0000:03:00.0"]);
        let a = s.qemu_argv();
        assert_eq!(
            devices(&a),
            vec![
                "pcie-root-port,id=rp0,chassis=1,slot=0",
                "vfio-pci,host=0000:03:00.0,bus=rp0,addr=0x0.0",
                "pcie-root-port,id=rp1,chassis=2,slot=0",
                "vfio-pci,host=0000:0b:00.0,bus=rp1,addr=0x0.0,multifunction=on",
                "vfio-pci,host=0000:0b:00.1,bus=rp1,addr=0x0.1",
            ]
        );
        let joined = a.join(" ");
        for want in [
            "-accel kvm -cpu host",
            "-machine q35 -nodefaults -nographic -no-reboot",
            "-serial file:/t/console.log -serial file:/t/report.log",
            "-kernel /k -initrd /i",
        ] {
            assert!(joined.contains(want), "{want} not in {joined}");
        }
        assert!(s.cmdline().contains("console=ttyS0"));
        assert!(s.cmdline().contains("passthru.port=ttyS1"));
    }

    #[test]
    fn tcg_guests_skip_the_io_apic_timer_check_kvm_guests_keep_it() {
        let mut s = spec(Vmm::Qemu, &["0000:03:00.0"]);
        assert!(!s.cmdline().contains("no_timer_check"));
        s.accel = Accel::Tcg;
        assert!(s.cmdline().contains(" no_timer_check"));
        assert!(s.qemu_argv().join(" ").contains("no_timer_check"));
    }

    #[test]
    fn a_slot_without_function_0_is_renumbered() {
        let a = spec(Vmm::Qemu, &["0000:0b:00.2", "0000:0b:00.3"]).qemu_argv();
        assert_eq!(
            devices(&a)[1..],
            [
                "vfio-pci,host=0000:0b:00.2,bus=rp0,addr=0x0.0,multifunction=on",
                "vfio-pci,host=0000:0b:00.3,bus=rp0,addr=0x0.1",
            ]
        );
    }

    #[test]
    fn cloud_hypervisor_reports_on_its_serial_port() {
        let s = spec(Vmm::CloudHypervisor, &["0000:0b:00.0"]);
        let a = s.ch_argv().join(" ");
        assert!(a.contains("--serial file=/t/report.log --console file=/t/console.log"));
        assert!(a.contains("--device path=/sys/bus/pci/devices/0000:0b:00.0/"));
        assert!(a.contains("--memory size=1024M"));
        assert!(s.cmdline().contains("console=hvc0"));
        assert!(s.cmdline().contains("passthru.port=ttyS0"));
    }
}
