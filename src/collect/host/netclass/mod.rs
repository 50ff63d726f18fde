//! `netclass`: network interface properties from sysfs `class/net/<device>/*`, as node_exporter
//! 1.5's `netclass_linux.go` (through procfs 0.8's `sysfs.NetClassByIface`): `node_network_up`,
//! `node_network_info{device,address,broadcast,duplex,operstate,ifalias}` and one
//! `node_network_<property>{device}` per numeric attribute.
//!
//! An attribute the kernel refuses to report (EINVAL for `speed` or `carrier` while the link is
//! down, EOPNOTSUPP, or absent or unreadable) has no sample, as in node_exporter; the rest of the
//! device and the collection are unaffected. Regular files in `class/net` (`bonding_masters`)
//! are not devices. Devices matching `host.network.device_exclude` are skipped (node_exporter's
//! `--collector.netclass.ignored-devices`).

mod netlink;

#[cfg(test)]
pub(in crate::collect::host) use netlink::parse as parse_links;
pub(in crate::collect::host) use netlink::{
    Held, Link, LinkHandoff, LinkSocket, Statistics, Stats64,
};

use std::io;

use regex::Regex;

use super::procfiles::ProcFiles;
use crate::collect::family::Kind;
use crate::collect::family::intern;
use crate::collect::{Error, Family};

/// A numeric attribute: (file under the device, family name, help, type).
type Attribute = (&'static str, &'static str, &'static str, Kind);

macro_rules! attribute {
    ($file:literal, $property:literal, $kind:ident) => {
        (
            $file,
            concat!("node_network_", $property),
            concat!("Network device property: ", $property),
            Kind::$kind,
        )
    };
}

/// The numeric attributes, in node_exporter's order. `speed` is handled apart (it is scaled).
const ATTRIBUTES: [Attribute; 16] = [
    attribute!("addr_assign_type", "address_assign_type", Gauge),
    attribute!("carrier", "carrier", Gauge),
    attribute!("carrier_changes", "carrier_changes_total", Counter),
    attribute!("carrier_up_count", "carrier_up_changes_total", Counter),
    attribute!("carrier_down_count", "carrier_down_changes_total", Counter),
    attribute!("dev_id", "device_id", Gauge),
    attribute!("dormant", "dormant", Gauge),
    attribute!("flags", "flags", Gauge),
    attribute!("ifindex", "iface_id", Gauge),
    attribute!("iflink", "iface_link", Gauge),
    attribute!("link_mode", "iface_link_mode", Gauge),
    attribute!("mtu", "mtu_bytes", Gauge),
    attribute!("name_assign_type", "name_assign_type", Gauge),
    attribute!("netdev_group", "net_dev_group", Gauge),
    attribute!("tx_queue_len", "transmit_queue_length", Gauge),
    attribute!("type", "protocol_type", Gauge),
];

const SPEED: Attribute = attribute!("speed", "speed_bytes", Gauge);

/// One device's attributes as sysfs reports them: the text ones (empty when unreported) and the
/// numbers of [`ATTRIBUTES`] then `speed` (Mbit/s), `None` when unreported.
#[derive(Debug, Clone, PartialEq)]
struct Device {
    name: String,
    operstate: String,
    address: String,
    broadcast: String,
    duplex: String,
    ifalias: String,
    values: [Option<i64>; ATTRIBUTES.len() + 1],
}

impl Device {
    fn new(name: String) -> Self {
        Device {
            name,
            operstate: String::new(),
            address: String::new(),
            broadcast: String::new(),
            duplex: String::new(),
            ifalias: String::new(),
            values: [None; ATTRIBUTES.len() + 1],
        }
    }

    /// Sets numeric attribute `file` (a name of [`ATTRIBUTES`] or `speed`).
    fn set(&mut self, file: &str, value: Option<i64>) {
        if let Some(slot) = ATTRIBUTES
            .iter()
            .chain([&SPEED])
            .position(|(name, ..)| *name == file)
        {
            self.values[slot] = value;
        }
    }
}

/// Reads every device under `class/net` not matching `exclude`: through one rtnetlink dump plus
/// the few attributes netlink lacks when `files` is the live `/sys` (see [`netlink`]), every
/// attribute from sysfs otherwise (another root is a fixture or another host's sysfs, which
/// this process's netlink does not describe) or when netlink fails (no `NETLINK_ROUTE`, a
/// sandbox refusing the socket).
pub(super) fn collect(
    files: &ProcFiles,
    exclude: Option<&Regex>,
    held: &Held,
) -> Result<Vec<Family>, Error> {
    let Some(mut names) = files.entries("class/net")? else {
        return Ok(Vec::new());
    };
    names.retain(|name| !exclude.is_some_and(|re| re.is_match(name)));
    let devices = if files.root() == std::path::Path::new(netlink::LIVE_SYSFS) {
        match netlink::devices(files.root(), names.clone(), held) {
            Ok(devices) => devices,
            Err(err) => {
                tracing::debug!(error = %err, "netclass: netlink failed, reading sysfs only");
                from_sysfs(files, names)?
            }
        }
    } else {
        from_sysfs(files, names)?
    };
    Ok(families(&devices))
}

/// The families of `devices`, in node_exporter's order; families without samples are left out.
fn families(devices: &[Device]) -> Vec<Family> {
    let mut up = Family::gauge(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
    );
    let mut info = Family::gauge(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
    );
    let mut numeric: Vec<Family> = ATTRIBUTES
        .iter()
        .chain([&SPEED])
        .map(|(_, name, help, kind)| Family::new(*name, *help, *kind))
        .collect();
    for device in devices {
        let name = intern(&device.name);
        up.push(
            [("device", name.clone())],
            if device.operstate == "up" { 1.0 } else { 0.0 },
        );
        info.push(
            [
                ("device", name.clone()),
                ("address", device.address.clone().into()),
                ("broadcast", device.broadcast.clone().into()),
                ("duplex", device.duplex.clone().into()),
                ("operstate", device.operstate.clone().into()),
                ("ifalias", device.ifalias.clone().into()),
            ],
            1.0,
        );
        for ((family, (file, ..)), value) in numeric
            .iter_mut()
            .zip(ATTRIBUTES.iter().chain([&SPEED]))
            .zip(device.values)
        {
            let Some(mut value) = value else {
                continue;
            };
            if *file == "speed" {
                // Mbit/s to bytes/s, in node_exporter's integer arithmetic: -1 (unknown)
                // becomes -125000.
                value = value.wrapping_mul(1000 * 1000) / 8;
            }
            family.push([("device", name.clone())], value as f64);
        }
    }
    let mut families = vec![up, info];
    families.extend(numeric);
    families.retain(|family| !family.samples.is_empty());
    families
}

/// Every attribute of the devices `names` from sysfs, one file each.
fn from_sysfs(files: &ProcFiles, names: Vec<String>) -> Result<Vec<Device>, Error> {
    let mut devices = Vec::with_capacity(names.len());
    for name in names {
        let dir = format!("class/net/{name}");
        // Every net device has `operstate`: its read tells a device from a regular file, and
        // from a device removed since the listing.
        let operstate = match read(files, &dir, "operstate", |t| Some(t.to_owned())) {
            Ok(value) => value.unwrap_or_default(),
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotADirectory => {
                continue;
            }
            Err(err) => return Err(err),
        };
        if operstate.is_empty() && files.entries(&dir)?.is_none() {
            continue;
        }
        let text = |name| read(files, &dir, name, |t| Some(t.to_owned()));
        let mut device = Device::new(name.clone());
        device.operstate = operstate;
        device.address = text("address")?.unwrap_or_default();
        device.broadcast = text("broadcast")?.unwrap_or_default();
        device.duplex = text("duplex")?.unwrap_or_default();
        device.ifalias = text("ifalias")?.unwrap_or_default();
        for (slot, (file, ..)) in ATTRIBUTES.iter().chain([&SPEED]).enumerate() {
            device.values[slot] = read(files, &dir, file, parse_int)?;
        }
        devices.push(device);
    }
    Ok(devices)
}

/// Attribute `name` of the device at `dir`, trimmed and parsed with `parse`; `None` when the
/// kernel does not report it (see the module documentation) or `parse` rejects it.
fn read<T>(
    files: &ProcFiles,
    dir: &str,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, Error> {
    match files.required(&format!("{dir}/{name}"), |text| Ok(parse(text.trim()))) {
        Ok(value) => Ok(value),
        Err(Error::Read { source, .. }) if unreported(&source) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether a read error means "this attribute has no value now" rather than a failure: what
/// procfs skips (absent, permission, EINVAL, EOPNOTSUPP), and text that is not UTF-8.
pub(super) fn unreported(err: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidData
    ) || [Errno::INVAL, Errno::OPNOTSUPP]
        .iter()
        .any(|errno| err.raw_os_error() == Some(errno.raw_os_error()))
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` reads it (procfs's parser): an optional sign,
/// then decimal, or hexadecimal, octal or binary by their `0x`, `0`/`0o` and `0b` prefixes
/// (`flags` is `0x1003`). `None` when it is not one.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = i128::from(parse_uint(unsigned)?);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// An unsigned integer as Go's `strconv.ParseUint(s, 0, 64)` reads it: no sign, the prefixes of
/// [`parse_int`].
pub(super) fn parse_uint(text: &str) -> Option<u64> {
    let lower = text.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &text[2..]),
        Some("0b") => (2, &text[2..]),
        Some("0o") => (8, &text[2..]),
        Some(_) if text.starts_with('0') => (8, &text[1..]),
        _ => (10, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The fuzz driver's entry for the rtnetlink parser (`host::fuzzing`): the links of `bytes`
/// as a dump reply.
pub(super) fn fuzz_netlink(bytes: &[u8]) -> Result<Vec<Link>, String> {
    netlink::fuzz(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    fn value(families: &[Family], name: &str, device: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("device", device)])
    }

    fn labels(families: &[Family], name: &str, device: &str) -> Vec<(String, String)> {
        let family = families.iter().find(|f| f.name == name).expect(name);
        let sample = family
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "device" && v == device))
            .expect(device);
        sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_the_captured_and_the_hand_made_devices() {
        let families =
            collect(&files_in(&fixture_sys()), None, &Held::default()).expect("collects");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_network_up",
                "node_network_info",
                "node_network_address_assign_type",
                "node_network_carrier",
                "node_network_carrier_changes_total",
                "node_network_carrier_up_changes_total",
                "node_network_carrier_down_changes_total",
                "node_network_device_id",
                "node_network_dormant",
                "node_network_flags",
                "node_network_iface_id",
                "node_network_iface_link",
                "node_network_iface_link_mode",
                "node_network_mtu_bytes",
                "node_network_name_assign_type",
                "node_network_net_dev_group",
                "node_network_transmit_queue_length",
                "node_network_protocol_type",
                "node_network_speed_bytes",
            ]
        );
        // Every directory is a device; bonding_masters (a file) is not.
        let up = &families[0];
        let devices: Vec<&str> = up.samples.iter().map(|s| s.labels[0].1.as_ref()).collect();
        assert_eq!(
            devices,
            ["bond0", "bond1", "enp3s0", "eth0", "ifb0", "ifb1", "lo"]
        );
        assert_eq!(up.help, "Value is 1 if operstate is 'up', 0 otherwise.");
        assert_eq!(value(&families, "node_network_up", "eth0"), Some(1.0));
        assert_eq!(value(&families, "node_network_up", "lo"), Some(0.0)); // "unknown"
        assert_eq!(value(&families, "node_network_up", "ifb0"), Some(0.0));
        let kind = |name: &str| families.iter().find(|f| f.name == name).expect(name).kind;
        assert_eq!(kind("node_network_carrier_changes_total"), Kind::Counter);
        assert_eq!(kind("node_network_mtu_bytes"), Kind::Gauge);
        assert_eq!(
            families[13].help, "Network device property: mtu_bytes",
            "{}",
            families[13].name
        );

        // Captured: eth0 (virtio, link up, speed -1), lo, ifb0 (down: EINVAL attributes were
        // not capturable, so they are absent).
        assert_eq!(
            labels(&families, "node_network_info", "eth0"),
            pairs(&[
                ("device", "eth0"),
                ("address", "02:fc:00:00:00:01"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("duplex", "unknown"),
                ("operstate", "up"),
                ("ifalias", ""),
            ])
        );
        assert_eq!(
            labels(&families, "node_network_info", "lo"),
            pairs(&[
                ("device", "lo"),
                ("address", "00:00:00:00:00:00"),
                ("broadcast", "00:00:00:00:00:00"),
                ("duplex", ""),
                ("operstate", "unknown"),
                ("ifalias", ""),
            ])
        );
        for (name, device, expected) in [
            ("node_network_mtu_bytes", "eth0", Some(1400.0)),
            ("node_network_mtu_bytes", "lo", Some(65536.0)),
            ("node_network_flags", "eth0", Some(4099.0)), // 0x1003
            ("node_network_flags", "lo", Some(9.0)),
            ("node_network_flags", "ifb0", Some(130.0)), // 0x82
            ("node_network_carrier", "eth0", Some(1.0)),
            ("node_network_carrier", "ifb0", None),
            ("node_network_dormant", "ifb0", None),
            ("node_network_name_assign_type", "ifb0", None),
            ("node_network_speed_bytes", "ifb0", None),
            ("node_network_speed_bytes", "lo", None),
            ("node_network_speed_bytes", "eth0", Some(-125_000.0)),
            ("node_network_carrier_changes_total", "eth0", Some(2.0)),
            ("node_network_carrier_up_changes_total", "eth0", Some(1.0)),
            ("node_network_carrier_down_changes_total", "eth0", Some(1.0)),
            ("node_network_iface_id", "eth0", Some(4.0)),
            ("node_network_iface_link", "ifb1", Some(3.0)),
            ("node_network_protocol_type", "lo", Some(772.0)),
            ("node_network_transmit_queue_length", "ifb0", Some(32.0)),
            ("node_network_device_id", "eth0", Some(0.0)), // 0x0
            ("node_network_address_assign_type", "ifb0", Some(1.0)),
            ("node_network_net_dev_group", "lo", Some(0.0)),
            ("node_network_iface_link_mode", "eth0", Some(0.0)),
            // Hand-made: a 10 Gbit/s port with an alias, and bonds.
            ("node_network_speed_bytes", "enp3s0", Some(1_250_000_000.0)),
            ("node_network_mtu_bytes", "enp3s0", Some(9000.0)),
            ("node_network_name_assign_type", "enp3s0", Some(4.0)),
            ("node_network_flags", "bond0", Some(5123.0)), // 0x1403
            ("node_network_speed_bytes", "bond0", Some(125_000_000.0)),
            ("node_network_carrier", "bond1", None),
        ] {
            assert_eq!(
                value(&families, name, device),
                expected,
                "{name}{{{device}}}"
            );
        }
        assert_eq!(
            labels(&families, "node_network_info", "enp3s0"),
            pairs(&[
                ("device", "enp3s0"),
                ("address", "a0:36:9f:1c:22:4e"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("duplex", "full"),
                ("operstate", "up"),
                ("ifalias", "uplink to sw1 port 12"),
            ])
        );
    }

    #[test]
    fn excluded_devices_are_skipped() {
        let exclude = Regex::new("^(lo|ifb.*|bond.*)$").expect("valid regex");
        let families =
            collect(&files_in(&fixture_sys()), Some(&exclude), &Held::default()).expect("collects");
        let devices: Vec<&str> = families[0]
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_ref())
            .collect();
        assert_eq!(devices, ["enp3s0", "eth0"]);
        // No family is left without samples.
        assert!(families.iter().all(|f| !f.samples.is_empty()));
    }

    #[test]
    fn an_absent_class_directory_is_no_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            collect(&files_in(dir.path()), None, &Held::default())
                .expect("ok")
                .is_empty()
        );
        std::fs::create_dir_all(dir.path().join("class/net")).expect("mkdir");
        assert!(
            collect(&files_in(dir.path()), None, &Held::default())
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn malformed_values_are_left_out_and_never_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let eth = dir.path().join("class/net/eth9");
        std::fs::create_dir_all(&eth).expect("mkdir");
        for (file, text) in [
            ("operstate", "up\n"),
            ("mtu", "lots\n"),
            ("flags", "0x\n"),
            ("speed", "99999999999999999999\n"),
            ("carrier", "\n"),
            ("ifindex", "+7\n"),
            ("iflink", "0b101\n"),
            ("type", "-0x10\n"),
            ("dev_id", "010\n"),
            ("tx_queue_len", "1_000\n"),
            ("dormant", "0x-1\n"),
        ] {
            std::fs::write(eth.join(file), text).expect("write");
        }
        std::fs::write(eth.join("address"), [0xff, 0xfe]).expect("write");
        // A directory where a value should be is a read failure, not a value.
        std::fs::create_dir(eth.join("duplex")).expect("mkdir");
        assert!(collect(&files_in(dir.path()), None, &Held::default()).is_err());
        std::fs::remove_dir(eth.join("duplex")).expect("rmdir");

        let families = collect(&files_in(dir.path()), None, &Held::default()).expect("collects");
        for name in [
            "node_network_mtu_bytes",
            "node_network_flags",
            "node_network_speed_bytes",
            "node_network_carrier",
            "node_network_transmit_queue_length",
            "node_network_dormant",
        ] {
            assert_eq!(value(&families, name, "eth9"), None, "{name}");
        }
        assert_eq!(value(&families, "node_network_iface_id", "eth9"), Some(7.0));
        assert_eq!(
            value(&families, "node_network_iface_link", "eth9"),
            Some(5.0)
        );
        assert_eq!(
            value(&families, "node_network_protocol_type", "eth9"),
            Some(-16.0)
        );
        assert_eq!(
            value(&families, "node_network_device_id", "eth9"),
            Some(8.0)
        );
        // Not UTF-8: the label is empty.
        assert_eq!(labels(&families, "node_network_info", "eth9")[1].1, "");
    }

    #[test]
    fn go_integer_syntax() {
        for (text, expected) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-1", Some(-1)),
            ("0x1003", Some(4099)),
            ("0X1f", Some(31)),
            ("0o17", Some(15)),
            ("017", Some(15)),
            ("0b11", Some(3)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("", None),
            ("-", None),
            ("0x", None),
            ("08", None),
            ("1.5", None),
            ("--1", None),
            ("é", None),
        ] {
            assert_eq!(parse_int(text), expected, "{text:?}");
        }
    }

    #[test]
    fn unreadable_attributes_are_unreported() {
        use rustix::io::Errno;
        for errno in [Errno::INVAL, Errno::OPNOTSUPP, Errno::NOENT, Errno::ACCESS] {
            assert!(unreported(&io::Error::from_raw_os_error(
                errno.raw_os_error()
            )));
        }
        for errno in [Errno::IO, Errno::ISDIR, Errno::NOTDIR] {
            assert!(!unreported(&io::Error::from_raw_os_error(
                errno.raw_os_error()
            )));
        }
    }
}
