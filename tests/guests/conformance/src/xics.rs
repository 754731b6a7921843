//! The XICS source controller (docs/partitions.md, RTAS table): the vty's
//! source 0x1000 through ibm,get-xive/set-xive/int-off/int-on with good and bad
//! arguments (status -3 for a bad source, server, priority or argument count,
//! as QEMU's xics_spapr.c), and H_EOI/H_IPOLL accepting it. Nothing types into
//! this guest, so the source never fires here; the `linux-xive-off-p9` scenario
//! checks its delivery.
use paprika_guest_rt::*;

const VTY_SOURCE: u32 = 0x1000;

fn rtas(name: &str, args: &[u32], nret: usize) -> [i32; 8] {
    rtas_call(name, args, nret).unwrap_or([-99; 8])
}

fn status(name: &str, got: [i32; 8], want: i32) {
    check(
        name,
        got[0] == want,
        format_args!("status {} (expected {})", got[0], want),
    );
}

/// Checks get-xive of the vty source answers `server` and `priority`.
fn xive_is(name: &str, server: i32, priority: i32) {
    let r = rtas("ibm,get-xive", &[VTY_SOURCE], 3);
    check(
        name,
        r[0] == 0 && r[1] == server && r[2] == priority,
        format_args!(
            "status {} server {} priority {:#x} (expected 0 {} {:#x})",
            r[0], r[1], r[2], server, priority
        ),
    );
}

pub fn checks() {
    // Reset state: routed to server 0, masked.
    xive_is("rtas-get-xive-reset", 0, 0xff);
    // Linux's unmask: set-xive (server, priority), then int-on.
    status(
        "rtas-set-xive",
        rtas("ibm,set-xive", &[VTY_SOURCE, 0, 5], 1),
        0,
    );
    xive_is("rtas-get-xive-set", 0, 5);
    status("rtas-int-off", rtas("ibm,int-off", &[VTY_SOURCE], 1), 0);
    xive_is("rtas-get-xive-off", 0, 0xff);
    status("rtas-int-on", rtas("ibm,int-on", &[VTY_SOURCE], 1), 0);
    xive_is("rtas-get-xive-on", 0, 5);

    // Bad sources (the IPI's number is not one), servers, priorities and
    // argument counts; nothing changes.
    for (what, nr) in [("ipi", 2), ("zero", 0), ("next", 0x1001), ("big", u32::MAX)] {
        let r = rtas("ibm,get-xive", &[nr], 3);
        check(
            "rtas-get-xive-bad-source",
            r[0] == -3,
            format_args!("{} {:#x}: status {}", what, nr, r[0]),
        );
        let s = rtas("ibm,set-xive", &[nr, 0, 5], 1);
        let off = rtas("ibm,int-off", &[nr], 1);
        let on = rtas("ibm,int-on", &[nr], 1);
        check(
            "rtas-xive-calls-bad-source",
            s[0] == -3 && off[0] == -3 && on[0] == -3,
            format_args!(
                "{} {:#x}: set {} off {} on {}",
                what, nr, s[0], off[0], on[0]
            ),
        );
    }
    status(
        "rtas-set-xive-bad-server",
        rtas("ibm,set-xive", &[VTY_SOURCE, 99, 5], 1),
        -3,
    );
    status(
        "rtas-set-xive-bad-priority",
        rtas("ibm,set-xive", &[VTY_SOURCE, 0, 0x100], 1),
        -3,
    );
    status(
        "rtas-set-xive-bad-nargs",
        rtas("ibm,set-xive", &[VTY_SOURCE, 0], 1),
        -3,
    );
    status(
        "rtas-get-xive-bad-nret",
        rtas("ibm,get-xive", &[VTY_SOURCE], 1),
        -3,
    );
    status(
        "rtas-int-off-bad-nargs",
        rtas("ibm,int-off", &[VTY_SOURCE, 0], 1),
        -3,
    );
    xive_is("rtas-get-xive-unchanged", 0, 5);

    // H_EOI names the source; H_IPOLL shows nothing pending (it never fired).
    let (rc, _) = hcall(H_EOI, &[0xff00_0000 | u64::from(VTY_SOURCE)]);
    check(
        "xics-eoi-vty-source",
        rc == H_SUCCESS,
        format_args!("rc {}", rc),
    );
    let (rc, out) = hcall(H_IPOLL, &[0]);
    check(
        "xics-ipoll-idle",
        rc == H_SUCCESS && out[0] == 0xff00_0000 && out[1] == 0xff,
        format_args!("rc {} xirr {:#x} mfrr {:#x}", rc, out[0], out[1]),
    );

    // Masked again, as the guest found it.
    status(
        "rtas-set-xive-mask",
        rtas("ibm,set-xive", &[VTY_SOURCE, 0, 0xff], 1),
        0,
    );
    xive_is("rtas-get-xive-masked", 0, 0xff);
}
