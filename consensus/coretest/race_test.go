//go:build race

package coretest_test

// raceEnabled: the race detector makes the randomised tests several times
// slower, so they run fewer seeds under it.
const raceEnabled = true
