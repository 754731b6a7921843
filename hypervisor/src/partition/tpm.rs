//! H_TPM_COMM on this machine: the portable proxy (`uv::tpm`) with the host
//! TPM found at boot, a TCG I2C TPM (`uv::tis_i2c`) reached through
//! OPAL_I2C_REQUEST (`platform::opal::i2c`), or none. docs/pef.md.
use super::lpar::Partition;
use crate::fdt::host::TpmI2c;
use crate::papr::hcall::HcallResult;
use crate::platform::opal::i2c::OpalI2c;
use crate::uv::tis_i2c::TisI2c;
use crate::uv::tpm::{GuestBuffers, TpmProxy, TpmTransport, TransportError};
use crate::{info, warn};

/// The host TPM.
pub enum HostTpm {
    None,
    I2c(TisI2c<OpalI2c>),
}

impl TpmTransport for HostTpm {
    fn present(&self) -> bool {
        match self {
            HostTpm::None => false,
            HostTpm::I2c(t) => t.present(),
        }
    }
    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        match self {
            HostTpm::None => Err(TransportError::Absent),
            HostTpm::I2c(t) => {
                let r = t.execute(cmd, rsp);
                if let Err(e) = r {
                    warn!("tpm: command failed on the host TPM: {:?}", e);
                }
                r
            }
        }
    }
    fn release(&mut self) {
        if let HostTpm::I2c(t) = self {
            t.release();
        }
    }
}

/// One proxy for the machine: one command at a time, whoever sends it.
static PROXY: spin::Mutex<TpmProxy<HostTpm>> = spin::Mutex::new(TpmProxy::new(HostTpm::None));

/// Probes the TPM the device tree or `paprika.tpm=` names
/// (`HostInfo::host_tpm`); logs what it found.
pub fn init(found: Option<TpmI2c>) {
    let Some(at) = found else {
        info!("PAPRIKA tpm: none (no TCG I2C TPM in the device tree, no paprika.tpm=); H_TPM_COMM: H_RESOURCE for permitted partitions");
        return;
    };
    let mut t = TisI2c::probe(OpalI2c::new(at.bus_id, at.addr));
    if t.present() {
        info!(
            "PAPRIKA tpm: TCG I2C TPM on OPAL I2C bus {} address {:#x}, DID_VID {:#010x}",
            at.bus_id,
            at.addr,
            t.did_vid()
        );
        *PROXY.lock().transport() = HostTpm::I2c(t);
    } else {
        let (rc, broken) = t.bus().last_error();
        warn!(
            "PAPRIKA tpm: no TPM answers on OPAL I2C bus {} address {:#x} (OPAL code {}{})",
            at.bus_id,
            at.addr,
            rc,
            if broken {
                ", request never completed"
            } else {
                ""
            }
        );
    }
}

/// A partition's memory for the proxy: the same checks as every hcall buffer
/// (inside the partition; for a secure VM, shared pages only).
struct Memory<'a>(&'a Partition);

impl GuestBuffers for Memory<'_> {
    fn accessible(&self, gpa: u64, len: u64) -> bool {
        self.0.contains(gpa, len)
    }
    fn read(&self, gpa: u64, out: &mut [u8]) -> bool {
        self.0.read_guest(gpa, out).is_some()
    }
    fn write(&self, gpa: u64, data: &[u8]) -> bool {
        self.0.write_guest(gpa, data).is_some()
    }
}

/// H_TPM_COMM of partition `p`, r4..r8 in `args`.
pub fn hcall(p: &Partition, args: &[u64]) -> HcallResult {
    let mut proxy = PROXY.lock();
    let mut session = p.tpm.lock();
    proxy.hcall(p.tpm_allowed, &mut session, args, &Memory(p))
}

/// The partition stops or reboots: its session ends (what it created is
/// flushed from the TPM).
pub fn release(p: &Partition) {
    let mut proxy = PROXY.lock();
    proxy.close(&mut p.tpm.lock());
}
