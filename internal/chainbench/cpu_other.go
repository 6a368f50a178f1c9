//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package chainbench

import "time"

// processCPU returns 0: the process's CPU time is not read on this
// platform, and the CPU figures of a Result stay zero.
func processCPU() time.Duration { return 0 }
