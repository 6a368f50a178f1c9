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
	} {
		require.ErrorContains(t, start(tc.args...), tc.want, "%q", tc.args)
	}

	// The structs register the same flags wherever they are used.
	for _, tc := range []struct {
		register func(fs *flag.FlagSet)
		want     []string
	}{
		{func(fs *flag.FlagSet) { new(signerFlags).register(fs, "x") }, []string{"signer", "signer-mspid"}},
		{func(fs *flag.FlagSet) { new(serverTLSFlags).register(fs) }, []string{"tls-cert", "tls-key"}},
		{func(fs *flag.FlagSet) { new(clientTLSFlags).register(fs, "", "x", "--orderer") }, []string{"tls-ca", "tls-server-name"}},
		{func(fs *flag.FlagSet) { new(clientTLSFlags).register(fs, "peer-", "x", "") }, []string{"peer-tls-ca"}},
		{func(fs *flag.FlagSet) { new(kafkaFlags).register(fs) }, []string{"kafka-tls", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key", "kafka-sasl-user", "kafka-sasl-password", "kafka-sasl-mechanism"}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		tc.register(fs)
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		require.ElementsMatch(t, tc.want, got)
	}
}
