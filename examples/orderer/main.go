// Command orderer is an ordering service node that serves Hyperledger
// Fabric's AtomicBroadcast gRPC API (Broadcast and Deliver) over the
// kafkaconsensus library, with the tools to try it by hand.
//
// Subcommands:
//
//	orderer kafka      run an embedded Kafka cluster that several nodes share
//	orderer cryptogen  generate an organisation's CA and identities (Fabric MSP folders)
//	orderer genesis    write a channel's genesis block from MSP folders
//	orderer start      run an ordering node
//	orderer broadcast  send signed envelopes to a node and count the answers
//	orderer deliver    read blocks from a node
//
// Every subcommand takes --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: run parses args (without the subcommand's
// name) and does the work, writing its results to out, until ctx ends.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

var commands = []command{
	{"kafka", "run an embedded Kafka cluster on loopback, shared by several nodes", runKafka},
	{"cryptogen", "generate an organisation's CA, admin, client and orderer identities as Fabric MSP folders", runCryptogen},
	{"genesis", "write a channel's genesis block from Fabric MSP folders", runGenesis},
	{"start", "run an ordering node serving Fabric's AtomicBroadcast API", runStart},
	{"broadcast", "send signed envelopes to a node and count the statuses", runBroadcast},
	{"deliver", "read blocks of a channel from a node", runDeliver},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: orderer <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'orderer <command> --help' for the flags of a command.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "orderer:", err)
		os.Exit(1)
	}
}

// errUsage reports a command line that does not parse; the usage has
// already been printed.
var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) == 0 {
		usage(errOut)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(out)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	fmt.Fprintf(errOut, "orderer: unknown command %q\n\n", args[0])
	usage(errOut)
	return errUsage
}
