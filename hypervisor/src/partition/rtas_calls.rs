//! RTAS calls (PAPR chapter 7) reached through H_RTAS.
use core::sync::atomic::Ordering;

use super::host_clock::{HostClock, Query};
use super::lpar::{Partition, StopReason};
use super::vcpu::{self, Next, Vcpu, VcpuContext, VcpuState};
use crate::arch::ppc64::{instr, timer};
use crate::papr::hcall::HcallError;
use crate::papr::rtas::{self as r, RtasArgs, RtasCall};
use crate::platform::opal;

/// Runs the RTAS call whose buffer is at guest real `buf`. A malformed buffer is an
/// hcall error (H_PARAMETER); a bad call gets an RTAS status in the buffer.
pub fn call(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, buf: u64) -> Result<Next, HcallError> {
    let mut raw = [0u8; 12 + 4 * 2 * r::MAX_WORDS];
    let avail = p.mem_size.saturating_sub(buf).min(raw.len() as u64) as usize;
    if avail < 12 {
        return Err(HcallError::Parameter);
    }
    p.read_guest(buf, &mut raw[..avail])
        .ok_or(HcallError::Parameter)?;
    let mut a = RtasArgs::parse(&raw[..avail]).map_err(|_| HcallError::Parameter)?;
    let mut next = Next::Resume;
    match r::call_for_token(a.token) {
        None => a.set_status(r::RTAS_PARAMETER_ERROR),
        Some(c) => next = run(p, v, ctx, c, &mut a),
    }
    let mut out = [0u8; 4 * r::MAX_WORDS];
    let n = a.encode_rets(&mut out);
    p.write_guest(buf + 12 + 4 * a.nargs as u64, &out[..n])
        .ok_or(HcallError::Parameter)?;
    Ok(next)
}

/// The host's wall clock (`host_clock`): the lock is held only to decide and
/// to record, never across OPAL.
static HOST_CLOCK: spin::Mutex<HostClock> = spin::Mutex::new(HostClock::new());

fn tb_hz() -> u64 {
    timer::ticks_per_us().max(1) * 1_000_000
}

/// Starts the host RTC reading early (OPAL answers it asynchronously), so the
/// first get-time-of-day of a guest finds the reply waiting.
pub fn prime_host_clock() {
    if HOST_CLOCK.lock().query(instr::mftb(), tb_hz()) != Query::Read {
        return;
    }
    let reading = opal::rtc_read_start()
        .ok()
        .map(|t| (to_unix(t), instr::mftb()));
    // Not an error yet: the reply may still come; the first get-time-of-day
    // reads again (with a back-off only if that fails too).
    let mut c = HOST_CLOCK.lock();
    match reading {
        Some(r) => c.record(Some(r), instr::mftb(), tb_hz()),
        None => *c = HostClock::new(),
    }
}

fn to_unix((ymd, hms): (u32, u64)) -> i64 {
    r::from_opal_bcd(ymd, hms).to_unix()
}

/// The host's time now, in Unix seconds; `None` at once while another caller
/// reads the RTC or after a failed read (back-off), never waiting for another
/// caller's OPAL retries (audit finding 7).
fn host_unix() -> Option<i64> {
    let hz = tb_hz();
    match HOST_CLOCK.lock().query(instr::mftb(), hz) {
        Query::Known(t) => return Some(t),
        Query::Unavailable => return None,
        Query::Read => {}
    }
    let reading = opal::rtc_read().ok().map(|t| (to_unix(t), instr::mftb()));
    let mut c = HOST_CLOCK.lock();
    c.record(reading, instr::mftb(), hz);
    if reading.is_none() {
        drop(c);
        crate::warn!("host RTC read failed; get-time-of-day fails until a retry succeeds");
        return None;
    }
    match c.query(instr::mftb(), hz) {
        Query::Known(t) => Some(t),
        _ => None,
    }
}

fn now_unix(p: &Partition) -> Option<i64> {
    Some(host_unix()? + p.tod_offset.load(Ordering::Relaxed))
}

fn run(p: &Partition, v: &Vcpu, ctx: &mut VcpuContext, c: RtasCall, a: &mut RtasArgs) -> Next {
    use RtasCall::*;
    match c {
        GetTimeOfDay => match now_unix(p) {
            Some(t) if a.nret >= 8 => {
                let d = r::DateTime::from_unix(t);
                a.set_status(r::RTAS_SUCCESS);
                for (i, f) in [d.year, d.month, d.day, d.hour, d.minute, d.second, 0]
                    .iter()
                    .enumerate()
                {
                    a.set_ret(i + 1, *f);
                }
            }
            Some(_) => a.set_status(r::RTAS_PARAMETER_ERROR),
            None => a.set_status(r::RTAS_HARDWARE_ERROR),
        },
        SetTimeOfDay => {
            let f = |i| a.arg(i).unwrap_or(0);
            let d = r::DateTime {
                year: f(0),
                month: f(1),
                day: f(2),
                hour: f(3),
                minute: f(4),
                second: f(5),
            };
            if a.nargs < 6 || !d.is_valid() {
                a.set_status(r::RTAS_PARAMETER_ERROR);
            } else if let Some(now) = now_unix(p) {
                let host = now - p.tod_offset.load(Ordering::Relaxed);
                p.tod_offset.store(d.to_unix() - host, Ordering::Relaxed);
                a.set_status(r::RTAS_SUCCESS);
            } else {
                a.set_status(r::RTAS_HARDWARE_ERROR);
            }
        }
        PowerOff => {
            a.set_status(r::RTAS_SUCCESS);
            p.stop(StopReason::PowerOff);
            return Next::Leave;
        }
        SystemReboot => {
            // Restarts this partition only, with fresh memory: the vCPU leaves the
            // guest and performs the reboot from its thread (`vcpu::thread_work`).
            // One owner even when several vCPUs ask at once: the image is loaded
            // once (audit finding 10); the others just stop.
            a.set_status(r::RTAS_SUCCESS);
            if p.reboot_requested
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                v.reboot_owner.store(true, Ordering::Release);
            }
            vcpu::stop_self(v);
            return Next::Leave;
        }
        DisplayCharacter => {
            let ch = a.arg(0).unwrap_or(0) as u8;
            p.console_put(&[ch]);
            a.set_status(r::RTAS_SUCCESS);
        }
        StartCpu => {
            let (Some(id), Some(pc), Some(r3)) = (a.arg(0), a.arg(1), a.arg(2)) else {
                a.set_status(r::RTAS_PARAMETER_ERROR);
                return Next::Resume;
            };
            match p.vcpus.iter().find(|t| t.id == id) {
                None => a.set_status(r::RTAS_PARAMETER_ERROR),
                Some(t) => {
                    let msr = super::lpar::initial_msr();
                    // A secure VM's start-cpu (reflected by the ultravisor,
                    // r3 its start cookie) enters the new vCPU through it.
                    let via_uv = p.uv.start_cpu_entry(ctx.regs.msr)
                        == crate::uv::partition::Resume::UvReturn;
                    if t.request_start(u64::from(pc), msr, u64::from(r3), p.epoch(), via_uv) {
                        a.set_status(r::RTAS_SUCCESS);
                    } else {
                        a.set_status(r::RTAS_HARDWARE_ERROR);
                    }
                }
            }
        }
        StopSelf => {
            vcpu::stop_self(v);
            let _ = ctx;
            return Next::Leave;
        }
        QueryCpuStoppedState => match a.arg(0).and_then(|id| p.vcpus.iter().find(|t| t.id == id)) {
            None => a.set_status(r::RTAS_PARAMETER_ERROR),
            Some(t) => {
                a.set_status(r::RTAS_SUCCESS);
                a.set_ret(
                    1,
                    if t.state() == VcpuState::Runnable {
                        2
                    } else {
                        0
                    },
                );
            }
        },
        GetSystemParameter => get_system_parameter(p, a),
        SetSystemParameter => {
            let status = match a.arg(0) {
                Some(param) if a.nargs == 2 => crate::papr::sysparm::set_status(param),
                _ => r::RTAS_PARAMETER_ERROR,
            };
            a.set_status(status);
        }
        SetPowerLevel | GetPowerLevel => {
            let set = matches!(c, SetPowerLevel);
            match r::power_level(set, a.nargs, a.nret, a.arg(0).unwrap_or(0)) {
                Ok(level) => {
                    a.set_status(r::RTAS_SUCCESS);
                    a.set_ret(1, level);
                }
                Err(status) => a.set_status(status),
            }
        }
        NvramFetch | NvramStore => nvram(p, matches!(c, NvramStore), a),
        EventScan | CheckException => a.set_status(r::RTAS_NO_ERRORS_FOUND),
        ReadPciConfig
        | WritePciConfig
        | QueryPeDmaWindow
        | CreatePeDmaWindow
        | RemovePeDmaWindow
        | ResetPeDmaWindow
        | SetEehOption
        | SetSlotReset
        | ReadSlotResetState2
        | GetConfigAddrInfo2
        | SlotErrorDetail
        | ConfigurePe
        | ChangeMsi
        | QueryInterruptSourceNumber => super::passthrough::rtas(p, c, a),
        OsTerm => {
            let mut msg = [0u8; 256];
            let addr = u64::from(a.arg(0).unwrap_or(0));
            let n = (0..msg.len())
                .take_while(|&i| {
                    p.read_guest(addr + i as u64, &mut msg[i..i + 1]).is_some() && msg[i] != 0
                })
                .count();
            let text = alloc::string::String::from_utf8_lossy(&msg[..n]).into_owned();
            a.set_status(r::RTAS_SUCCESS);
            p.stop(StopReason::OsTerm(text));
            return Next::Leave;
        }
        NmiRegister => match (a.arg(0), a.arg(1)) {
            (Some(sreset), Some(mce)) if r::nmi_addresses_valid(sreset, mce, p.mem_size) => {
                // The system-reset handler is used by H_SIGNAL_SYS_RESET, the
                // machine-check handler for accesses outside the partition's
                // memory (partition::vcpu, with an RTAS error log).
                p.fwnmi_sreset.store(u64::from(sreset), Ordering::Release);
                p.fwnmi_mce.store(u64::from(mce), Ordering::Release);
                a.set_status(r::RTAS_SUCCESS);
            }
            _ => a.set_status(r::RTAS_PARAMETER_ERROR),
        },
        NmiInterlock => {
            // Frees the machine-check error-log buffer if this vCPU holds it
            // (QEMU answers -3 to others; success keeps Linux's call after a
            // FWNMI system reset, which takes no interlock, quiet).
            if let Some(i) = p.vcpus.iter().position(|t| core::ptr::eq(&**t, v)) {
                let _ = p.fwnmi_interlock.compare_exchange(
                    i as u64,
                    u64::MAX,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            a.set_status(r::RTAS_SUCCESS)
        }
        // The XICS source controller (partition::xics).
        IntOn | IntOff | SetXive | GetXive => super::xics::rtas(p, c, a),
    }
    Next::Resume
}

/// ibm,get-system-parameter(parameter, buffer, length): the value, preceded by its
/// BE16 length, into the caller's buffer (`papr::sysparm`).
fn get_system_parameter(p: &Partition, a: &mut RtasArgs) {
    use crate::papr::sysparm;
    let (Some(param), Some(buf), Some(len)) = (a.arg(0), a.arg(1), a.arg(2)) else {
        a.set_status(r::RTAS_PARAMETER_ERROR);
        return;
    };
    let facts = sysparm::PartitionFacts {
        vcpus: p.vcpus.len() as u32,
        mem_bytes: p.mem_size,
        host_threads: match p.boot.cpu {
            crate::papr::guest_fdt::CpuModel::Power9 => 4,
            crate::papr::guest_fdt::CpuModel::Power10 => 8,
        },
    };
    let mut value = [0u8; 128];
    let Some(n) = sysparm::value(param, &facts, &mut value) else {
        a.set_status(r::RTAS_PARAM_NOT_SUPPORTED);
        return;
    };
    let mut out = [0u8; 130];
    match sysparm::encode(&value[..n], len, &mut out) {
        Ok(k) => {
            if p.write_guest(u64::from(buf), &out[..k]).is_some() {
                a.set_status(r::RTAS_SUCCESS);
            } else {
                a.set_status(r::RTAS_PARAMETER_ERROR);
            }
        }
        Err(status) => a.set_status(status),
    }
}

/// nvram-fetch(index, buffer, length) / nvram-store(...) -> (status, length):
/// the partition's NVRAM (`papr::nvram`) to or from guest real `buffer`. The
/// range is checked first (parameter error), then the buffer (hardware error,
/// nothing copied), as QEMU's `rtas_nvram_fetch`/`rtas_nvram_store`.
fn nvram(p: &Partition, store: bool, a: &mut RtasArgs) {
    use crate::papr::nvram as nv;
    if let Err(status) = nv::check_arity(a.nargs, a.nret) {
        a.set_status(status);
        return;
    }
    let (offset, buf, len) = (
        a.arg(0).unwrap_or(0),
        u64::from(a.arg(1).unwrap_or(0)),
        a.arg(2).unwrap_or(0),
    );
    let mut n = p.nvram.lock();
    let r = match n.range(offset, len) {
        Ok(r) => r,
        Err(status) => {
            a.set_status(status);
            return;
        }
    };
    let ok = if store {
        let ok = p.read_guest(buf, n.get_mut(r.clone())).is_some();
        if ok {
            super::nvram_host::store(p, r.start, n.get(r));
        }
        ok
    } else {
        p.write_guest(buf, n.get(r)).is_some()
    };
    if ok {
        a.set_status(r::RTAS_SUCCESS);
        a.set_ret(1, len);
    } else {
        vcpu::rate_limited_warn(p, "nvram RTAS call: buffer outside the partition", buf);
        a.set_status(nv::BAD_BUFFER);
    }
}
