//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ingressbench

import "time"

// processCPU returns 0: the process's CPU time is not read on this
// platform, and Start refuses to measure.
func processCPU() time.Duration { return 0 }
