package netns

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckReasons checks each reason Check gives for skipping, in the
// order it looks, with the environment replaced: so the path a test takes
// as a user without root is tested as root too.
func TestCheckReasons(t *testing.T) {
	ok := env{
		getenv:   func(string) string { return "" },
		goos:     "linux",
		euid:     0,
		lookPath: func(name string) (string, error) { return "/sbin/" + name, nil },
		tryNetns: func() error { return nil },
	}
	require.NoError(t, check(ok))

	for _, tc := range []struct {
		name   string
		change func(e *env)
		reason string
	}{
		{"disabled", func(e *env) {
			e.getenv = func(k string) string {
				if k == DisableEnv {
					return "1"
				}
				return ""
			}
			e.euid = 1000 // the first reason wins
		}, DisableEnv + " is set"},
		{"not linux", func(e *env) { e.goos = "darwin" }, "they need Linux"},
		{"not root", func(e *env) { e.euid = 1000 }, "needs root (effective user ID 1000)"},
		{"no ip", func(e *env) {
			e.lookPath = func(name string) (string, error) {
				if name == "ip" {
					return "", errors.New("not found")
				}
				return "/sbin/" + name, nil
			}
		}, "no ip command (iproute2)"},
		{"no tc", func(e *env) {
			e.lookPath = func(name string) (string, error) {
				if name == "tc" {
					return "", errors.New("not found")
				}
				return "/sbin/" + name, nil
			}
		}, "no tc command (iproute2)"},
		{"refused", func(e *env) {
			e.tryNetns = func() error { return errors.New("ip netns add: Operation not permitted") }
		}, "Operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.change(&e)
			err := check(e)
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorContains(t, err, tc.reason)
		})
	}
}

func TestOwnerPID(t *testing.T) {
	for _, tc := range []struct {
		ns  string
		pid int
		ok  bool
	}{
		{"kcnet-123-4-kafka", 123, true},
		{"kcnet-123-0-check", 123, true},
		{"kcnet-x-1-kafka", 0, false},
		{"kcnet-123", 0, false},
		{"other-123-1-kafka", 0, false},
		{"kcnet--1-kafka", 0, false},
	} {
		pid, ok := ownerPID(tc.ns)
		require.Equal(t, tc.ok, ok, tc.ns)
		if ok {
			require.Equal(t, tc.pid, pid, tc.ns)
		}
	}
}
