// Package memlog is the reference in-memory implementation of log.Log and the
// fault injector used by cruzdb's tests and experiments. It never persists
// anything.
//
// # Model
//
// A Log is a sequencer plus an array of write-once positions, as in CORFU.
// Append first takes the next position from the sequencer (the tail moves at
// once), then writes it. Between the two steps the position is a hole: a Read
// there returns ErrNotWritten, and a Fill there wins, turning it into junk; the
// late write then loses and Append takes a fresh position and tries again,
// which is what a CORFU client does when its write finds the position filled.
// Without latency or faults both steps happen under one lock, so holes only
// appear when latency, a held write or a dropped write is configured.
//
// Fill beyond the tail is remembered; the sequencer skips such positions.
// Trim(p) frees the entries below p; trimming beyond the tail moves the tail up
// to p, since positions below it can never be assigned. Close wakes calls that
// are waiting (they return ErrClosed; appends among them leave holes), and
// a second Close returns ErrClosed like every other call after the first.
//
// A Log keeps its positions in fixed-size chunks (so appending never copies
// older entries, and trimming frees whole chunks) behind one read-write
// mutex. Without latency or hooks, Append and Read take the lock once each and
// allocate one copy of the entry; no goroutine is started per call.
//
// AppendBatch (log.BatchAppender) appends several entries as one round trip:
// their positions are taken together, the latency is paid once, and they land
// together, ascending in the order given; faults are drawn per entry.
//
// # Latency
//
// Options.AppendLatency is added to every Append attempt after its position
// is taken, so appends in flight leave real holes below the tail.
// Options.ReadLatency is added to every Read before the lookup.
// Options.Latency draws an extra latency per operation from the log's random
// source, seeded from Options.Seed, to model a distribution.
//
// Waits are precise: time.Sleep and timers can overshoot by about a
// millisecond on Linux, far more than the latencies a test injects, so waits
// are handed to one shared waker goroutine. It sleeps on a timer until 1.5 ms
// before the earliest deadline, then polls the clock, yielding the processor
// (runtime.Gosched) between polls, and wakes each waiting call at its
// deadline. One poller serves every waiting call, so the CPU cost stays
// bounded however many appends are in flight; the waker exists only while
// some call is waiting. A wait never ends early, except when the call's
// context ends or the log is closed. How late it ends depends on the load;
// BenchmarkSleep reports it (bench/RESULTS.md has figures).
//
// # Faults
//
// One hook covers fault injection: Options.Inject (or SetInject at run time)
// is called for every operation with a Call naming the operation, the position
// (for Append, the position just taken), the Seq number of the call among
// calls of that operation, and for Append the Attempt. The Fault it returns
// can:
//
//   - fail the call with an error (Fault.Err), which comes back wrapped and
//     naming the position; a failed Append takes no position;
//   - drop an Append after sequencing (Fault.Drop): the position stays a hole
//     until filled, as with a writer that crashed;
//   - lose the reply (Fault.AckLost): the call takes effect but the caller
//     gets an error;
//   - hold the call at a Gate until the test releases it (Fault.Hold): a held
//     Append owns its position and lands late, or loses it to a Fill;
//   - add latency (Fault.Delay).
//
// The Latency and Inject hooks are called one at a time (never concurrently),
// with the log's random source, so a run with the same Seed and the same call
// order injects the same faults. Inject may be called while the log's lock is
// held: it must not call the Log's operations (Stats, SetInject and Gate
// methods are fine).
//
// CrashClone returns the log as a crash at this instant would leave it, for
// recovery tests: written and filled positions, the trim point and the tail
// are kept; appends in flight are lost and stay holes.
package memlog
