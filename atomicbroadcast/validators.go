package atomicbroadcast

import (
	"context"
	"time"
)

// workerIdle is how long a validation goroutine waits for the next
// validation before it exits.
const workerIdle = time.Second

// validators runs a server's validations on at most as many goroutines as
// it was made for. A goroutine stays for the next validation while there
// is work, and exits after workerIdle without any: a goroutine per
// envelope would start each signature check on a new, small stack and
// grow it, which costs about a sixth of the check.
type validators struct {
	work    chan func()   // to an idle goroutine
	running chan struct{} // a token per goroutine
	idle    time.Duration // workerIdle but in tests
}

// newValidators returns validators of at most n goroutines.
func newValidators(n int) *validators {
	return &validators{work: make(chan func()), running: make(chan struct{}, n), idle: workerIdle}
}

// run runs f on an idle goroutine, or on a new one while there are fewer
// than the maximum, else waits for one to be idle. It returns ctx's error,
// without running f, when ctx ends first.
func (v *validators) run(ctx context.Context, f func()) error {
	select {
	case v.work <- f:
		return nil
	default:
	}
	select {
	case v.work <- f:
	case v.running <- struct{}{}:
		go v.loop(f)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// loop runs f, then the work it is given, until it has been idle for
// workerIdle.
func (v *validators) loop(f func()) {
	defer func() { <-v.running }()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-v.work:
		case <-idle.C:
			return
		}
	}
}
