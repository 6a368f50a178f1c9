package main

import (
	"context"
	"flag"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSharedFlags checks that start, broadcast and deliver take the same
// signer flags, and the checks of the shared flag structs, through the
// commands' own parsing.
func TestSharedFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	ctx := context.Background()
	run := func(args ...string) error { return dispatch(ctx, args, io.Discard, io.Discard) }
	start := func(extra ...string) error {
		return run(append([]string{"start", "--listen", "127.0.0.1:0", "--brokers", "127.0.0.1:1", "--genesis", missing, "--data", t.TempDir()}, extra...)...)
	}
	client := func(cmd string, extra ...string) error {
		return run(append([]string{cmd, "--orderer", "127.0.0.1:1", "--channel", "ch"}, extra...)...)
	}

	// Each command reads --signer and --signer-mspid, and loads the
	// identity they name.
	signer := []string{"--signer", missing, "--signer-mspid", "Org1MSP"}
	require.ErrorContains(t, start(signer...), "start: --signer: ")
	for _, cmd := range []string{"broadcast", "deliver"} {
		require.ErrorContains(t, client(cmd, signer...), "--signer: ", cmd)
		require.ErrorContains(t, client(cmd, "--signer", missing), "--channel, --signer and --signer-mspid are required", cmd)
		require.ErrorContains(t, client(cmd, append(signer, "--tls-ca", missing, "--tls-server-name", "orderer0")...), "--signer: ", cmd)
		require.ErrorContains(t, client(cmd, append(signer, "--stall-timeout", "-1s")...), "--stall-timeout -1s: must be 0 (off) or positive", cmd)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--signer", missing}, "start: --signer and --signer-mspid go together"},
		{[]string{"--signer-mspid", "Org1MSP"}, "start: --signer and --signer-mspid go together"},
		{[]string{"--tls-cert", missing}, "start: --tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", missing, "--tls-key", missing}, "start: TLS: "},
		{[]string{"--kafka-tls-cert", missing}, "start: --kafka-tls-cert and --kafka-tls-key go together"},
		{[]string{"--kafka-tls-ca", missing}, "start: --kafka-tls-ca: "},
		{[]string{"--kafka-sasl-password", "secret"}, "start: --kafka-sasl-password needs --kafka-sasl-user"},
		{[]string{"--kafka-sasl-user", "osn", "--kafka-sasl-mechanism", "GSSAPI"}, `start: --kafka-sasl-mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{[]string{"--peer-tls-ca", missing}, "start: --peer-tls-ca needs --peers"},
		{[]string{"--tls-client-auth"}, "start: --tls-client-auth needs --tls-cert"},
		{[]string{"--tls-client-ca", missing}, "start: --tls-client-ca needs --tls-client-auth"},
		{[]string{"--tls-binding", "some"}, `start: --tls-binding: TLS binding "some": want none, deliver or all`},
		{[]string{"--max-connections", "-1"}, "start: --max-connections, --max-streams-per-connection, --max-broadcast-streams and --max-deliver-streams must not be negative"},
		{[]string{"--broadcast-idle-timeout", "-1s"}, "start: budgets, sizes and timeouts must not be negative"},
		{[]string{"--throttle-org-rate", "-2"}, "start: --throttle-client-rate and --throttle-org-rate must not be negative"},
		{[]string{"--kafka-sasl-password", "x", "--kafka-sasl-password-file", "y"}, "give one"},
		{[]string{"--kafka-sasl-password-file", "/nonexistent/pass"}, "--kafka-sasl-password-file"},
		{[]string{"--max-in-flight", "-1"}, "must not be negative"},
	} {
		require.ErrorContains(t, start(tc.args...), tc.want, "%q", tc.args)
	}

	// The structs register the same flags wherever they are used.
	for _, tc := range []struct {
		register func(fs *flag.FlagSet)
		want     []string
	}{
		{func(fs *flag.FlagSet) { new(signerFlags).register(fs, "x") }, []string{"signer", "signer-mspid"}},
		{func(fs *flag.FlagSet) { new(serverTLSFlags).register(fs) }, []string{"tls-cert", "tls-key", "tls-client-auth", "tls-client-ca", "tls-binding"}},
		{func(fs *flag.FlagSet) { new(clientTLSFlags).register(fs, "", "x", "--orderer") }, []string{"tls-ca", "tls-server-name", "tls-cert", "tls-key"}},
		{func(fs *flag.FlagSet) { new(clientTLSFlags).register(fs, "peer-", "x", "") }, []string{"peer-tls-ca"}},
		{func(fs *flag.FlagSet) { new(limitFlags).register(fs) }, []string{"max-connections", "max-streams-per-connection", "max-broadcast-streams",
			"max-deliver-streams", "broadcast-stream-budget", "broadcast-budget", "max-recv-message-size", "broadcast-idle-timeout",
			"throttle-client-rate", "throttle-org-rate"}},
		{func(fs *flag.FlagSet) { new(kafkaFlags).register(fs) }, []string{"kafka-tls", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key", "kafka-sasl-user", "kafka-sasl-password",
			"kafka-sasl-password-file", "kafka-sasl-mechanism", "kafka-client-id", "strict-topic", "max-message-bytes", "max-in-flight",
			"produce-linger", "validate-envelopes"}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		tc.register(fs)
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		require.ElementsMatch(t, tc.want, got)
	}
}

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "64MiB": 64 << 20, "512 KiB": 512 << 10, "1GiB": 1 << 30, "10MB": 10e6, "3KB": 3000, "7B": 7} {
		var b byteSize
		require.NoError(t, b.Set(in), in)
		require.Equal(t, want, int64(b), in)
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "9223372036854775807KiB", "ten"} {
		var b byteSize
		require.ErrorContains(t, b.Set(in), "want a number of bytes", in)
	}
	for b, want := range map[byteSize]string{0: "0", 64 << 20: "64MiB", 512 << 10: "512KiB", 3 << 30: "3GiB", 1000: "1000"} {
		require.Equal(t, want, b.String())
	}
}
