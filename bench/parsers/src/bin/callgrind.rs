//! `callgrind <parser> <message-file> <iterations>` (or `callgrind --list`)
//!
//! Parses the file `iterations` times with the named parser (names as in the
//! criterion bench: sip-core, sip-core-lazy, rsip, rsip-lazy, rsipstack,
//! rsipstack-lazy), then prints one line:
//!
//! `parser=<p> file=<f> iterations=<n> allocs_per_parse=<a> bytes_per_parse=<b>`
//!
//! Allocations are counted by a global allocator wrapping `System` and only
//! around the parse loop, so start-up allocations are excluded. An
//! "allocation" is one call to `alloc`, `alloc_zeroed` or `realloc`.
//! Instructions are measured from outside by `callgrind.sh` (Ir of a run
//! with N+1000 iterations minus Ir of a run with N, divided by 1000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size(), Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size(), Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()), Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == "--list" {
        for p in sip_bench_parsers::parsers() {
            println!("{}", p.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.len() != 4 {
        let names: Vec<&str> = sip_bench_parsers::parsers().iter().map(|p| p.name).collect();
        eprintln!(
            "usage: {} <parser> <message-file> <iterations>\nparsers: {}",
            args[0],
            names.join(", ")
        );
        return ExitCode::from(2);
    }
    let Some(parser) = sip_bench_parsers::parser(&args[1]) else {
        eprintln!("unknown parser {:?}", args[1]);
        return ExitCode::from(2);
    };
    let data = match std::fs::read(&args[2]) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", args[2]);
            return ExitCode::from(2);
        }
    };
    let n: usize = match args[3].parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("iterations must be a positive integer");
            return ExitCode::from(2);
        }
    };

    let parse = parser.parse;
    let allocs0 = ALLOCS.load(Relaxed);
    let bytes0 = BYTES.load(Relaxed);
    let mut failed = 0usize;
    for _ in 0..n {
        if black_box(parse(black_box(&data))).is_err() {
            failed += 1;
        }
    }
    let allocs = ALLOCS.load(Relaxed) - allocs0;
    let bytes = BYTES.load(Relaxed) - bytes0;

    if failed > 0 {
        let err = parse(&data).err().unwrap_or_default();
        eprintln!("{}: parse failed on {}: {err}", parser.name, args[2]);
    }
    println!(
        "parser={} file={} iterations={n} allocs_per_parse={:.2} bytes_per_parse={:.0} failed={failed}",
        parser.name,
        args[2],
        allocs as f64 / n as f64,
        bytes as f64 / n as f64,
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
