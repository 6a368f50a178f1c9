package main

import (
	"os"
	"testing"
)

// TestMain runs the tests, or, with partitionClientEnv set, the client of
// the partition tests that the test binary runs on the client's host.
func TestMain(m *testing.M) {
	if os.Getenv(partitionClientEnv) != "" {
		os.Exit(runPartitionClient(os.Args[1:]))
	}
	code := m.Run()
	removeSharedOrderer()
	os.Exit(code)
}
