package memlog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cruzlog/cruzdb/log"
	"github.com/cruzlog/cruzdb/log/memlog"
)

func ExampleNew() {
	ctx := context.Background()
	l := memlog.New(nil)
	defer l.Close()

	p, _ := l.Append(ctx, []byte("hello"))
	data, _ := l.Read(ctx, p)
	fmt.Printf("%d: %s\n", p, data)

	_ = l.Fill(ctx, 1) // junk forever; the next append skips it
	p, _ = l.Append(ctx, []byte("world"))
	_, err := l.Read(ctx, 1)
	fmt.Println(p, errors.Is(err, log.ErrFilled))
	// Output:
	// 0: hello
	// 2 true
}

// A held append owns its position and leaves a hole below the tail until the
// test releases it; a Fill meanwhile wins, and the append lands elsewhere.
func ExampleGate() {
	ctx := context.Background()
	gate := memlog.NewGate()
	l := memlog.New(&memlog.Options{
		Inject: func(c memlog.Call, _ *rand.Rand) memlog.Fault {
			if c.Op == memlog.OpAppend && c.Seq == 0 && c.Attempt == 0 {
				return memlog.Fault{Hold: gate}
			}
			return memlog.Fault{}
		},
	})
	done := make(chan log.Position)
	go func() {
		p, _ := l.Append(ctx, []byte("late"))
		done <- p
	}()
	<-gate.Held()
	tail, _ := l.Tail(ctx)
	_, err := l.Read(ctx, 0)
	fmt.Println("tail", tail, "hole:", errors.Is(err, log.ErrNotWritten))

	fmt.Println("fill:", l.Fill(ctx, 0))
	gate.Release()
	fmt.Println("late append landed at", <-done)
	// Output:
	// tail 1 hole: true
	// fill: <nil>
	// late append landed at 1
}

// CrashClone keeps what is durable and loses what is in flight.
func ExampleLog_CrashClone() {
	ctx := context.Background()
	gate := memlog.NewGate()
	l := memlog.New(nil)
	_, _ = l.Append(ctx, []byte("durable"))
	l.SetInject(func(c memlog.Call, _ *rand.Rand) memlog.Fault {
		if c.Op == memlog.OpAppend {
			return memlog.Fault{Hold: gate}
		}
		return memlog.Fault{}
	})
	go func() { _, _ = l.Append(ctx, []byte("in flight")) }()
	<-gate.Held()

	crashed := l.CrashClone()
	gate.Release()

	data, _ := crashed.Read(ctx, 0)
	_, err := crashed.Read(ctx, 1)
	tail, _ := crashed.Tail(ctx)
	fmt.Printf("%s; position 1 is a hole: %v; tail %d\n", data, errors.Is(err, log.ErrNotWritten), tail)
	// Output: durable; position 1 is a hole: true; tail 2
}

// Faults are drawn from the log's seeded random source, so a run is
// reproducible from its seed.
func ExampleOptions_faults() {
	ctx := context.Background()
	l := memlog.New(&memlog.Options{
		Seed: 1,
		// 0-50 µs of extra latency on every call.
		Latency: func(op memlog.Op, r *rand.Rand) time.Duration {
			return time.Duration(r.IntN(50)) * time.Microsecond
		},
		// The writer of every third append dies after taking its position.
		Inject: func(c memlog.Call, r *rand.Rand) memlog.Fault {
			if c.Op == memlog.OpAppend && c.Seq%3 == 2 {
				return memlog.Fault{Drop: true}
			}
			return memlog.Fault{}
		},
	})
	for i := range 6 {
		p, err := l.Append(ctx, []byte{byte(i)})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("appended at", p)
	}
	// Output:
	// appended at 0
	// appended at 1
	// memlog: append position 2: memlog: injected fault
	// appended at 3
	// appended at 4
	// memlog: append position 5: memlog: injected fault
}
