//! H_RTAS with random buffers: tokens known and unknown, nargs and nret 0..=17,
//! arguments valid or one mutated, buffers inside this vCPU's scratch or
//! straddling the end of memory or outside it. Checked: the hcall status
//! (H_PARAMETER exactly when the buffer cannot be read whole), the RTAS status
//! where the call's contract fixes it, defined outputs, and that nothing but the
//! return words changed in and just after the buffer. Never made: power-off,
//! system-reboot, stop-self, ibm,os-term (they end or restart this vCPU or
//! partition), start-cpu of a stopped vCPU, ibm,nmi-register with valid handlers.
use paprika_guest_rt::*;

use crate::fuzz::{peek_u8, poke_u8, Fuzz, Want, H_PARAM};

const STATUS_ANY: i32 = i32::MIN;

/// RTAS statuses (PAPR 7.2.8, QEMU's sysparm codes).
const PARAM_ERR: i32 = -3;

impl Fuzz<'_> {
    pub fn rtas(&mut self) {
        let e = self.env;
        let n = e.nvcpus;
        let nargs = self.rng.below(18) as usize;
        let nret = self.rng.below(18) as usize;
        let size = 12 + 4 * (nargs + nret) as u64;
        // Where the buffer lies.
        let region = e.halves[self.cpu].rtas;
        let (buf, inside) = match self.rng.below(10) {
            // (Only vCPU 0: the other's writes would race with its header.)
            0 if self.cpu == 0 => {
                // Straddling the end of memory (or just inside it).
                let k = self
                    .rng
                    .pick(&[0u64, 1, 4, 8, 11, 12, 13, 16, 20, 40, 64, 100, 140, 141]);
                (e.mem - k.min(e.mem), false)
            }
            1 => (
                self.rng
                    .pick(&[e.mem + 4, 1 << 52, u64::MAX - 7, u64::MAX - 11, 1 << 32]),
                false,
            ),
            _ => (
                (region.start + self.rng.below(region.len() - 256)) & !3,
                true,
            ),
        };
        // The call and its arguments.
        let mut args = [0u32; 17];
        for a in args.iter_mut() {
            *a = self.rng.next() as u32;
        }
        let arg = |args: &[u32; 17], i: usize| (i < nargs).then(|| args[i]);
        let choice = self.rng.below(20);
        let name = match choice {
            0 => "get-time-of-day",
            1 => "set-time-of-day",
            2 => "display-character",
            3 => "query-cpu-stopped-state",
            4 => "ibm,get-system-parameter",
            5 => "event-scan",
            6 => "check-exception",
            7 => "ibm,nmi-register",
            8 => "ibm,nmi-interlock",
            9 => "ibm,int-on",
            10 => "ibm,int-off",
            11 => "ibm,set-xive",
            12 => "ibm,get-xive",
            13 => "ibm,set-system-parameter",
            14 => "set-power-level",
            15 => "get-power-level",
            16 => "start-cpu",
            _ => "",
        };
        let token = if name.is_empty() {
            self.rng
                .pick(&[0u32, 1, 0x1fff, 0x2000 + 0x100, 0xffff_ffff, 0x2fff])
        } else {
            e.token(name)
        };
        let valid = self.rng.chance(1, 2);
        // Arguments that reach past the first check.
        match name {
            "set-time-of-day" if valid => {
                let f = [2026, 12, 4, 15, 30, 0];
                args[..6].copy_from_slice(&f);
                if self.rng.chance(1, 2) {
                    let i = self.rng.below(6) as usize;
                    args[i] = self.rng.pick(&[0, 13, 32, 24, 60, 1969, 10000, u32::MAX]);
                    if i == 0 && args[0] == 24 {
                        args[0] = 1969;
                    }
                }
            }
            "display-character" => {
                // NUL (dropped by the console): characters without a newline
                // would run into this guest's report lines.
                args[0] = if valid { 0 } else { 0x100 };
            }
            "query-cpu-stopped-state" if valid => args[0] = self.rng.below(u64::from(n)) as u32,
            "ibm,get-system-parameter" => {
                args[0] = self.rng.pick(&[20, 42, 45, 48, 0, 43, 44, 49, u32::MAX]);
                let misc = e.halves[self.cpu].misc;
                args[1] = if valid {
                    (misc.end - 0x200 + self.rng.below(0x40)) as u32
                } else {
                    self.rng
                        .pick(&[e.mem - 1, e.mem, e.mem + 2, u64::from(u32::MAX)])
                        as u32
                };
                args[2] = self.rng.pick(&[0, 1, 2, 3, 16, 130, 4096, u32::MAX]);
            }
            "ibm,nmi-register" => {
                // Never valid: one handler beyond memory or 32 MiB.
                let limit = e.mem.min(32 << 20) as u32;
                args[0] = self.rng.below(0x1_0000) as u32;
                args[1] = self.rng.below(0x1_0000) as u32;
                let i = self.rng.below(2) as usize;
                args[i] = limit + self.rng.below(u64::from(u32::MAX - limit)) as u32;
            }
            "ibm,int-on" | "ibm,int-off" | "ibm,set-xive" | "ibm,get-xive" if valid => {
                args[0] = 0x1000;
                args[1] = self.rng.below(u64::from(n)) as u32;
                args[2] = self.rng.below(0x100) as u32;
                match self.rng.below(4) {
                    1 => args[0] = self.rng.pick(&[0, 2, 0xfff, 0x1001, u32::MAX]),
                    2 => args[1] = n + self.rng.below(100) as u32,
                    3 => args[2] = 0x100 + self.rng.below(100) as u32,
                    _ => {}
                }
            }
            "set-power-level" | "get-power-level" if valid => {
                args[0] = if self.rng.chance(3, 4) {
                    u32::MAX
                } else {
                    self.rng.below(4) as u32
                };
            }
            "ibm,set-system-parameter" => {
                args[0] = self.rng.pick(&[20, 42, 48, 45, 0, u32::MAX]);
            }
            "start-cpu" => {
                // Only vCPU 0 (always running: hardware error) or a bad id.
                args[0] = if valid {
                    0
                } else {
                    n + self.rng.below(8) as u32
                };
            }
            _ => {}
        }
        // The expected hcall status: the buffer must be readable whole.
        let avail = e.mem.saturating_sub(buf).min(140);
        let parses = nargs <= 16 && nret <= 16 && avail >= 12 && size <= avail;
        let hwant = if parses { 0 } else { H_PARAM };
        // The expected RTAS status.
        let st = |ok: bool, good: i32| if ok { good } else { PARAM_ERR };
        let status: i32 = if name.is_empty() || token == 0 {
            PARAM_ERR
        } else {
            match name {
                "get-time-of-day" => {
                    if nret >= 8 {
                        STATUS_ANY
                    } else {
                        PARAM_ERR
                    }
                }
                "set-time-of-day" => {
                    let d = &args[..6];
                    let ok = nargs >= 6
                        && (1970..=9999).contains(&d[0])
                        && (1..=12).contains(&d[1])
                        && (1..=31).contains(&d[2])
                        && d[3] < 24
                        && d[4] < 60
                        && d[5] < 60;
                    if ok {
                        STATUS_ANY
                    } else {
                        PARAM_ERR
                    }
                }
                "display-character" | "ibm,nmi-interlock" => 0,
                "event-scan" | "check-exception" => 1,
                "query-cpu-stopped-state" => st(arg(&args, 0).is_some_and(|i| i < n), 0),
                "ibm,get-system-parameter" => {
                    if nargs < 3 || ![20, 42, 45, 48].contains(&args[0]) {
                        PARAM_ERR
                    } else if args[2] < 2 {
                        -9999
                    } else if u64::from(args[1]) + 2 > e.mem {
                        PARAM_ERR
                    } else {
                        0
                    }
                }
                "ibm,nmi-register" => PARAM_ERR,
                "ibm,int-on" | "ibm,int-off" | "ibm,set-xive" | "ibm,get-xive" => {
                    let (wa, wr) = match name {
                        "ibm,set-xive" => (3, 1),
                        "ibm,get-xive" => (1, 3),
                        _ => (1, 1),
                    };
                    let ok = nargs == wa
                        && nret == wr
                        && args[0] == 0x1000
                        && (name != "ibm,set-xive" || (args[1] < n && args[2] <= 0xff));
                    st(ok, 0)
                }
                "ibm,set-system-parameter" => {
                    if nargs == 2 && [20, 42, 48].contains(&args[0]) {
                        -9002
                    } else {
                        PARAM_ERR
                    }
                }
                "set-power-level" | "get-power-level" => {
                    let wa = if name == "set-power-level" { 2 } else { 1 };
                    st(nargs == wa && nret == 2 && args[0] == u32::MAX, 0)
                }
                "start-cpu" => {
                    if nargs < 3 || args[0] >= n {
                        PARAM_ERR
                    } else {
                        -1
                    }
                }
                _ => STATUS_ANY,
            }
        };
        // Write the buffer (what lies inside memory) and a guard after it.
        let guard = 32u64;
        let poison = (self.rng.next() as u8) | 1;
        let write = |off: u64, b: u8| {
            if let Some(a) = buf.checked_add(off).filter(|&a| a < e.mem) {
                poke_u8(a, b);
            }
        };
        let head = [token, nargs as u32, nret as u32];
        let mut words = head.iter().chain(args.iter().take(nargs)).copied();
        let mut off = 0u64;
        for w in &mut words {
            for b in w.to_be_bytes() {
                write(off, b);
                off += 1;
            }
        }
        let args_end = off;
        if buf < e.mem {
            let end = (size + guard).min(e.mem - buf);
            for o in args_end..end {
                write(o, poison ^ o as u8);
            }
        }
        let want = if hwant == 0 {
            Want::Is(0)
        } else {
            Want::Is(hwant)
        };
        let _ = self.call(0xf000, &[buf], want);
        if !inside {
            return;
        }
        let rets_at = 12 + 4 * nargs as u64;
        let rets_end = if parses {
            rets_at + 4 * nret as u64
        } else {
            rets_at
        };
        let read32 = |o: u64| {
            let mut v = 0u32;
            for i in 0..4 {
                v = (v << 8) | u32::from(peek_u8(buf + o + i));
            }
            v
        };
        // Nothing outside the return words changed.
        let mut off = 0u64;
        for w in head.iter().chain(args.iter().take(nargs)) {
            if read32(off) != *w {
                self.report(
                    0xf000,
                    &[buf, u64::from(token), nargs as u64, nret as u64],
                    format_args!("argument word at +{} changed", off),
                );
                return;
            }
            off += 4;
        }
        for o in rets_end..size + guard {
            if peek_u8(buf + o) != poison ^ o as u8 {
                self.report(
                    0xf000,
                    &[buf, u64::from(token), nargs as u64, nret as u64],
                    format_args!("byte at +{} beyond the return words changed", o),
                );
                return;
            }
        }
        if !parses || nret == 0 {
            return;
        }
        let got = read32(rets_at) as i32;
        let ok = if status == STATUS_ANY {
            (-9999..=1).contains(&got)
        } else {
            got == status
        };
        if !ok {
            self.report(
                0xf000,
                &[buf, u64::from(token), nargs as u64, nret as u64],
                format_args!("{} returned status {} (want {})", name, got, status),
            );
            return;
        }
        // Defined outputs.
        let ret = |i: usize| (i < nret).then(|| read32(rets_at + 4 * i as u64));
        let bad = match name {
            "query-cpu-stopped-state" if got == 0 => ret(1).is_some_and(|s| s != 0 && s != 2),
            "ibm,get-xive" if got == 0 => {
                ret(1).is_some_and(|s| s >= n) || ret(2).is_some_and(|p| p > 0xff)
            }
            "set-power-level" | "get-power-level" if got == 0 => ret(1) != Some(100),
            "get-time-of-day" if got == 0 => {
                let y = ret(1).unwrap_or(0);
                let mo = ret(2).unwrap_or(0);
                let d = ret(3).unwrap_or(0);
                !(1970..=9999).contains(&y)
                    || !(1..=12).contains(&mo)
                    || !(1..=31).contains(&d)
                    || ret(4).is_some_and(|h| h > 23)
                    || ret(5).is_some_and(|m| m > 59)
                    || ret(6).is_some_and(|s| s > 60)
            }
            _ => false,
        };
        if bad {
            self.report(
                0xf000,
                &[buf, u64::from(token), nargs as u64, nret as u64],
                format_args!("{}: outputs {:?} {:?} {:?}", name, ret(1), ret(2), ret(3)),
            );
        }
    }
}

/// Status of an RTAS call made outside the fuzzer (start-cpu, stop-self...).
pub fn call(env: &crate::env::Env, name: &str, args: &[u32], nret: usize) -> i32 {
    rtas_call_token(env.token(name), args, nret)[0]
}
