//! `passthru config`: generate host and guest configuration; dry run unless `--apply`.
//!
//! `--run-commands` runs the bootloader and initramfs commands (`update-grub`,
//! `update-initramfs -u -k all`, ...) with `/bin/sh -c`, one after the other, stopping at
//! the first failure (exit status 1). Those tools act on the running system, not on a
//! directory, so `--run-commands` is refused (exit 2) when `--root` is not `/`: run them
//! inside that root yourself (`chroot DIR update-grub`).
//!
//! The preflight verdicts of the requested functions are carried into the warnings.
//! Exit status: 0; 1 when a requested device fails for a reason the configuration does
//! not fix (anything but the IOMMU being off) or a command fails; 2 on input errors.

use super::Global;
use anyhow::{bail, Context};
use clap::Args;
use passthru_config_gen::{
    apply, cmdline, facts, generate, verdicts, Bootloader, GuestKind, HostFacts, Initramfs, Plan,
    Request,
};
use passthru_iommu_groups::check_bdfs;
use passthru_pci_ids::{Bdf, DeviceId, Slot, VendorId};
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `passthru config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Devices to pass through: a BDF (`0b:00.0`), a slot (`0b:00`) or `vendor:device`
    /// (`1002:7300`). Every function of the slot goes along. Each argument is one guest;
    /// join several with commas (`05:00,0b:00`) to give one guest all of them.
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Guest formats to print (repeatable): proxmox, libvirt, qemu, cloud-hypervisor
    /// (default: these four), kubevirt (docs/kubevirt.md), or proxmox-mapping alone: a
    /// Proxmox VE cluster mapping over every node given (`--root` once per node snapshot,
    /// or `--roots-dir`).
    #[arg(long, value_name = "KIND")]
    pub guest: Vec<GuestKind>,
    /// With --guest proxmox-mapping: the mapping id of each DEVICE argument, in order
    /// (repeatable; default `pci-VVVV-DDDD` from the device's ids).
    #[arg(long, value_name = "ID")]
    pub mapping_id: Vec<String>,
    /// Where the kernel command line lives (default: detected): grub, systemd-boot, kernelstub.
    #[arg(long, value_name = "NAME")]
    pub bootloader: Option<Bootloader>,
    /// What builds the initramfs (default: detected): initramfs-tools, mkinitcpio, dracut.
    #[arg(long, value_name = "NAME")]
    pub initramfs: Option<Initramfs>,
    /// Write the files under --root (atomically, with a timestamped backup of each).
    #[arg(long, conflicts_with = "rollback")]
    pub apply: bool,
    /// After writing, run the bootloader and initramfs commands (only with --root /).
    #[arg(long, requires = "apply", conflicts_with = "rollback")]
    pub run_commands: bool,
    /// Restore the files changed by the last --apply, byte for byte. Refused when one
    /// of them changed since that apply, unless --force.
    #[arg(long)]
    pub rollback: bool,
    /// With --rollback: restore even files edited since the apply (each edited version
    /// is kept in the backup set first). With --guest proxmox-mapping: map a node's
    /// device even when it fails check (its finding is named).
    #[arg(long)]
    pub force: bool,
    /// Give each GPU legacy VGA in the guest (x-vga; SeaBIOS guests). Drops disable_vga=1.
    #[arg(long)]
    pub x_vga: bool,
    /// Do not add iommu=pt.
    #[arg(long)]
    pub no_iommu_pt: bool,
    /// Also bind through the kernel command line (vfio-pci.ids=...).
    #[arg(long)]
    pub early_ids: bool,
    /// Blacklist the host drivers (they are then unavailable to every other device too).
    #[arg(long)]
    pub blacklist: bool,
    /// Add pcie_acs_override=VALUE (patched kernels only; weakens isolation).
    #[arg(long, value_name = "VALUE")]
    pub acs_override: Option<String>,
    /// Remove this token from the kernel command line (repeatable), e.g. amd_iommu=on.
    #[arg(long = "remove-param", value_name = "TOKEN")]
    pub remove_param: Vec<String>,
    /// Stop binding this device to vfio-pci (repeatable; BDF, slot or vendor:device):
    /// its ids leave passthru's ids=, every other device bound before stays.
    #[arg(long, value_name = "DEVICE", conflicts_with = "rollback")]
    pub remove: Vec<String>,
}

/// Resolve one DEVICE word to slots.
fn resolve(word: &str, facts: &HostFacts) -> anyhow::Result<Vec<Slot>> {
    if let Ok(bdf) = word.parse::<Bdf>() {
        return Ok(vec![bdf.slot()]);
    }
    if let Ok(slot) = word.parse::<Slot>() {
        return Ok(vec![slot]);
    }
    if let Some((v, d)) = word.split_once(':') {
        if let (Ok(v), Ok(d)) = (v.parse::<VendorId>(), d.parse::<DeviceId>()) {
            let hits: Vec<Bdf> = facts
                .devices
                .iter()
                .filter(|x| x.vendor == v && x.device == d)
                .map(|x| x.bdf)
                .collect();
            return match hits.as_slice() {
                [] => bail!("no device {v}:{d} on this host"),
                [one] => Ok(vec![one.slot()]),
                many => {
                    let list: Vec<String> = many.iter().map(|b| b.to_string()).collect();
                    bail!(
                        "{v}:{d} matches {} devices ({}); name one by address",
                        many.len(),
                        list.join(", ")
                    )
                }
            };
        }
    }
    bail!("{word:?} is not a PCI address (0b:00.0), slot (0b:00) or vendor:device (1002:7300)")
}

fn request(a: &ConfigArgs, facts: &HostFacts) -> anyhow::Result<Request> {
    if a.devices.is_empty() && a.remove.is_empty() {
        bail!(
            "name the devices to pass through, e.g. `passthru config 0b:00` (see `passthru check`)"
        );
    }
    let mut sets = Vec::new();
    for arg in &a.devices {
        let mut set = Vec::new();
        for word in arg.split(',').filter(|w| !w.is_empty()) {
            set.extend(resolve(word, facts)?);
        }
        sets.push(set);
    }
    let mut remove = Vec::new();
    for arg in &a.remove {
        for word in arg.split(',').filter(|w| !w.is_empty()) {
            remove.extend(resolve(word, facts).with_context(|| format!("--remove {word}"))?);
        }
    }
    Ok(Request {
        sets,
        guests: if a.guest.is_empty() {
            GuestKind::DEFAULT.to_vec()
        } else {
            a.guest.clone()
        },
        bootloader: a.bootloader,
        initramfs: a.initramfs,
        iommu_pt: !a.no_iommu_pt,
        x_vga: a.x_vga,
        early_ids: a.early_ids,
        blacklist: a.blacklist,
        acs_override: a.acs_override.clone(),
        remove_params: a.remove_param.clone(),
        remove,
    })
}

/// The human report of a plan.
fn report(plan: &Plan, applied: Option<&apply::Applied>, dry_run: bool) -> String {
    let mut s = String::new();
    s.push_str("Kernel parameters\n");
    for p in &plan.param_reasons {
        if let Some(c) = plan.param_conflicts.iter().find(|c| c.ours == p.token) {
            s.push_str(&format!(
                "  ! {}  (not set: the command line keeps {}; pass --remove-param {} to replace it)\n",
                p.token, c.theirs, c.theirs
            ));
            continue;
        }
        let mark = if plan.kernel_params.add.contains(&p.token) {
            "+"
        } else {
            "="
        };
        s.push_str(&format!("  {mark} {}  ({})\n", p.token, p.why));
    }
    for r in &plan.kernel_params.remove {
        let ids = |t: &String| cmdline::param_name(t) == "vfio_pci.ids";
        let why = if ids(r) && plan.kernel_params.add.iter().any(ids) {
            "replaced: the new vfio-pci.ids= keeps every id it had"
        } else {
            "removal requested"
        };
        s.push_str(&format!("  - {r}  ({why})\n"));
    }
    if plan.param_reasons.is_empty() && plan.kernel_params.remove.is_empty() {
        s.push_str("  (none needed)\n");
    }
    s.push_str("\nFiles\n");
    if plan.files.is_empty() {
        s.push_str("  Nothing to change: every file is already up to date.\n");
    }
    for f in &plan.files {
        s.push_str(&f.diff());
    }
    if plan.files.is_empty() {
        s.push_str(
            "\nCommands (only needed if they have not run since these files last changed)\n",
        );
    } else {
        s.push_str("\nCommands (run them after writing, or pass --apply --run-commands)\n");
    }
    for c in &plan.commands {
        s.push_str(&format!("  {c}\n"));
    }
    for d in &plan.detected {
        s.push_str(&format!(
            "  ({}: {}, because {})\n",
            d.what, d.value, d.evidence
        ));
    }
    for (kind, text) in &plan.guest {
        s.push_str(&format!("\nGuest: {kind}\n{text}"));
    }
    if !plan.warnings.is_empty() {
        s.push_str("\nWarnings\n");
        for w in &plan.warnings {
            s.push_str(&format!("  [{}] {}\n", w.code, w.message));
        }
    }
    s.push('\n');
    match applied {
        Some(a) if a.changed.is_empty() => s.push_str("Applied: nothing changed.\n"),
        Some(a) => {
            s.push_str(&format!("Applied: wrote {}.\n", a.changed.join(", ")));
            if let Some(b) = &a.backup {
                s.push_str(&format!(
                    "Backups in {} (undo with --rollback).\n",
                    b.display()
                ));
            }
        }
        None if dry_run && !plan.files.is_empty() => {
            s.push_str("Dry run: nothing written. Re-run with --apply to write these files.\n")
        }
        None => {}
    }
    s
}

fn run_commands(commands: &[String]) -> anyhow::Result<bool> {
    for c in commands {
        eprintln!("passthru: running `{c}`");
        let st = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(c)
            .status()
            .with_context(|| format!("cannot run `{c}`"))?;
        eprintln!("passthru: `{c}` exited with {st}");
        if !st.success() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Run `passthru config`.
pub fn run(g: &Global, a: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if a.guest.contains(&GuestKind::ProxmoxMapping) {
        return super::mapping::run(g, a);
    }
    if a.force && !a.rollback {
        return Err(super::fleet::UsageError(
            "--force goes with --rollback or --guest proxmox-mapping".into(),
        )
        .into());
    }
    if !a.mapping_id.is_empty() {
        return Err(super::fleet::UsageError(
            "--mapping-id goes with --guest proxmox-mapping".into(),
        )
        .into());
    }
    let root = g.root.as_path();
    if a.rollback {
        let r = apply::rollback(root, a.force)?;
        if g.json {
            let v = passthru::report::ConfigReport::Rollback {
                rollback: passthru::report::RollbackReport::new(&r),
            };
            outln!("{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            outln!("Rolled back from {}", r.backup.display())?;
            for p in &r.restored {
                outln!("  restored {p}")?;
            }
            for p in &r.removed {
                outln!("  removed {p} (it did not exist before)")?;
            }
            for (p, c) in &r.kept {
                outln!(
                    "  {p} had changed since the apply: that version is kept in {}",
                    c.display()
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.run_commands && root != Path::new("/") {
        bail!("--run-commands acts on the running system, not on --root {}: run the commands inside that root yourself", root.display());
    }
    // The host model: sysfs, procfs and the configuration files, read once and confined
    // (a FIFO, socket, device node or directory is never opened; from_host refuses a
    // configuration file that exists but could not be read, naming it).
    let host = super::list::load_host(g)?;
    let mut facts = facts::from_host(&host)
        .with_context(|| format!("reading the configuration under {}", root.display()))?;
    let req = request(a, &facts)?;
    if req.guests.contains(&GuestKind::Kubevirt) {
        // Device plugins name resources after pci.ids names (docs/kubevirt.md).
        let names = super::list::list_names::load(root);
        let idx = super::list::list_names::index(names.db.as_ref());
        for d in &facts.devices {
            if let Some(n) = idx.as_ref().and_then(|i| i.device(d.vendor, d.device)) {
                facts
                    .device_names
                    .insert((d.vendor, d.device), n.to_string());
            }
        }
    }
    // The preflight verdicts for every requested function, carried as warnings.
    let bdfs: Vec<Bdf> = facts
        .devices
        .iter()
        .filter(|d| req.sets.iter().flatten().any(|s| *s == d.bdf.slot()))
        .map(|d| d.bdf)
        .collect();
    let verdict_report = check_bdfs(&host, &bdfs)?;
    facts.findings = verdicts::warnings(&verdict_report);
    let mut plan = generate(&facts, &req)?;
    // Lines the user added inside passthru's block since it wrote it: not overwritten.
    let edits = apply::block_edits(root, &plan.files)?;
    plan.warnings.extend(edits.iter().cloned());
    plan.refusals.extend(edits);
    if a.apply {
        if let Err(e) = plan.check_applicable() {
            // The plan and its warnings first, so the fix is shown in context.
            if !g.json {
                out!("{}", report(&plan, None, false))?;
            }
            return Err(e.into());
        }
    }
    let applied = if a.apply {
        Some(apply::apply_plan(root, &plan)?)
    } else {
        None
    };
    if g.json {
        outln!("{}", serde_json::to_string_pretty(&plan)?)?;
    } else {
        out!("{}", report(&plan, applied.as_ref(), !a.apply))?;
    }
    if a.run_commands && !run_commands(&plan.commands)? {
        return Ok(ExitCode::from(1));
    }
    // One rule for every command: 1 when a device fails today (as `check` says), even
    // where this configuration is what fixes it after a reboot.
    Ok(
        if verdict_report.worst() == passthru_iommu_groups::Verdict::Fail {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

#[cfg(test)]
mod tests {
    use super::run_commands;

    #[test]
    fn commands_stop_at_the_first_failure() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("ran");
        let cmds = vec![
            "true".to_string(),
            "exit 3".to_string(),
            format!("touch {}", marker.display()),
        ];
        assert!(!run_commands(&cmds).unwrap());
        assert!(!marker.exists(), "a command after a failure ran");
        assert!(run_commands(&[format!("touch {}", marker.display())]).unwrap());
        assert!(marker.exists());
    }
}
