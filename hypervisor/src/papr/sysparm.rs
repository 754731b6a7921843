//! ibm,get-system-parameter / ibm,set-system-parameter (PAPR 7.3.16): which
//! parameters a partition can read, their contents, and how they are stored in the
//! caller's buffer. Formats as QEMU's `spapr_rtas.c` writes them, plus the CEDE
//! latency settings Linux's cpuidle-pseries asks for.

/// Parameter numbers (LoPAR 7.3.16.1; Linux's and QEMU's constants).
pub const SPLPAR_CHARACTERISTICS: u32 = 20;
pub const DIAGNOSTICS_RUN_MODE: u32 = 42;
/// Cooperative memory overcommit characteristics (Linux asks; not offered).
pub const CMO_CHARACTERISTICS: u32 = 44;
/// Cede latency settings information (Linux's CEDE_LATENCY_TOKEN).
pub const CEDE_LATENCY: u32 = 45;
pub const UUID: u32 = 48;

/// RTAS statuses specific to the system-parameter calls.
pub const RTAS_NOT_AUTHORIZED: i32 = -9002;
pub const RTAS_SYSPARM_PARAM_ERROR: i32 = -9999;

/// A Linux cede-latency record is 10 bytes: hint, BE64 latency in timebase ticks,
/// wake-on-interrupts. The payload starts with that size minus one.
pub const CEDE_LATENCY_RECORD_SIZE: u8 = 10;

/// What the partition looks like, for the parameters that describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionFacts {
    pub vcpus: u32,
    pub mem_bytes: u64,
    /// Hardware threads per core of the processor model (QEMU's n_host_threads:
    /// 4 on POWER9, 8 on Power10).
    pub host_threads: u32,
}

/// The value of parameter `param` written into `out` (without the 2-byte length),
/// or `None` when the parameter is not supported (status -3).
pub fn value(param: u32, f: &PartitionFacts, out: &mut [u8; 128]) -> Option<usize> {
    let mut w = Writer { buf: out, n: 0 };
    match param {
        SPLPAR_CHARACTERISTICS => {
            // Dedicated processors: entitled capacity = all of them. A NUL-terminated
            // string, as QEMU's.
            w.str("MaxEntCap=");
            w.num(u64::from(f.vcpus));
            w.str(",DesMem=");
            w.num(f.mem_bytes >> 20);
            w.str(",DesProcs=");
            w.num(u64::from(f.vcpus));
            w.str(",MaxPlatProcs=");
            w.num(u64::from(f.vcpus));
            if f.host_threads > 0 {
                w.str(",HostThrs=");
                w.num(u64::from(f.host_threads));
            }
            w.bytes(&[0]);
        }
        // One byte: 0 = diagnostics disabled (QEMU's answer).
        DIAGNOSTICS_RUN_MODE => w.bytes(&[0]),
        // Record size minus one, no extended cede states (H_CEDE has only the
        // latency-hint-0 behaviour), and the terminating NUL: Linux then keeps its
        // own CEDE(0) latency estimate.
        CEDE_LATENCY => w.bytes(&[CEDE_LATENCY_RECORD_SIZE - 1, 0]),
        // No UUID was configured: a zero-length value, as QEMU without -uuid.
        UUID => {}
        _ => return None,
    }
    Some(w.n)
}

/// ibm,set-system-parameter: the parameters QEMU knows are read-only
/// (-9002 not authorized); the rest are not supported (-3).
pub fn set_status(param: u32) -> i32 {
    match param {
        SPLPAR_CHARACTERISTICS | DIAGNOSTICS_RUN_MODE | UUID => RTAS_NOT_AUTHORIZED,
        _ => super::rtas::RTAS_PARAM_NOT_SUPPORTED,
    }
}

/// How the value goes into a caller's buffer of `len` bytes: a BE16 length (the
/// whole value's), then as much of the value as fits. A buffer shorter than the
/// length field is -9999 (QEMU's sysparm_st).
pub fn encode(value: &[u8], len: u32, out: &mut [u8]) -> Result<usize, i32> {
    if len < 2 {
        return Err(RTAS_SYSPARM_PARAM_ERROR);
    }
    let n = value
        .len()
        .min(len as usize - 2)
        .min(out.len().saturating_sub(2));
    out[..2].copy_from_slice(&(value.len() as u16).to_be_bytes());
    out[2..2 + n].copy_from_slice(&value[..n]);
    Ok(2 + n)
}

struct Writer<'a> {
    buf: &'a mut [u8; 128],
    n: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        let room = self.buf.len() - self.n;
        let k = b.len().min(room);
        self.buf[self.n..self.n + k].copy_from_slice(&b[..k]);
        self.n += k;
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn num(&mut self, mut v: u64) {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&d[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: PartitionFacts = PartitionFacts {
        vcpus: 4,
        mem_bytes: 512 << 20,
        host_threads: 4,
    };

    fn get(param: u32) -> Option<Vec<u8>> {
        let mut b = [0u8; 128];
        value(param, &F, &mut b).map(|n| b[..n].to_vec())
    }

    #[test]
    fn splpar_string_matches_qemu_format() {
        assert_eq!(
            get(SPLPAR_CHARACTERISTICS).unwrap(),
            b"MaxEntCap=4,DesMem=512,DesProcs=4,MaxPlatProcs=4,HostThrs=4\0"
        );
        let mut b = [0u8; 128];
        let f = PartitionFacts {
            host_threads: 0,
            vcpus: 1,
            mem_bytes: 1 << 30,
        };
        let n = value(SPLPAR_CHARACTERISTICS, &f, &mut b).unwrap();
        assert_eq!(
            &b[..n],
            b"MaxEntCap=1,DesMem=1024,DesProcs=1,MaxPlatProcs=1\0"
        );
    }

    #[test]
    fn cede_latency_parses_as_linux_does() {
        let v = get(CEDE_LATENCY).unwrap();
        let mut buf = [0xffu8; 64];
        let n = encode(&v, 64, &mut buf).unwrap();
        assert_eq!(n, 4);
        // Linux: payload_size = BE16 at 0; record size = byte 2 + 1 must be 10;
        // records = (payload_size - 2) / 10.
        let payload_size = u16::from_be_bytes([buf[0], buf[1]]);
        assert_eq!(buf[2] + 1, CEDE_LATENCY_RECORD_SIZE);
        assert_eq!((payload_size - 2) / 10, 0);
    }

    #[test]
    fn other_parameters() {
        assert_eq!(get(DIAGNOSTICS_RUN_MODE).unwrap(), [0]);
        assert_eq!(get(UUID).unwrap(), Vec::<u8>::new());
        assert_eq!(get(CMO_CHARACTERISTICS), None);
        assert_eq!(get(43), None);
        assert_eq!(set_status(SPLPAR_CHARACTERISTICS), RTAS_NOT_AUTHORIZED);
        assert_eq!(set_status(CEDE_LATENCY), -3);
    }

    #[test]
    fn encoding_truncates_and_checks_length() {
        let mut out = [0u8; 16];
        assert_eq!(encode(b"abcdef", 5, &mut out), Ok(5));
        assert_eq!(&out[..5], &[0, 6, b'a', b'b', b'c']);
        assert_eq!(encode(b"abc", 1, &mut out), Err(RTAS_SYSPARM_PARAM_ERROR));
        assert_eq!(encode(b"", 2, &mut out), Ok(2));
        assert_eq!(&out[..2], &[0, 0]);
    }
}
