// Package cputime reads the CPU time the whole process has used, for the
// benchmarks' CPU figures (internal/chainbench, internal/ingressbench): the
// difference of two readings is the CPU a stretch of work cost, every
// goroutine and the runtime included.
package cputime
