package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// newFlagSet returns the flag set of a subcommand; its usage prints the
// summary and the flags to stderr.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("orderer "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: orderer %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, and rejects positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// commaList is a string flag that may be repeated or hold a comma separated
// list.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// orgFlag is a repeatable MSPID=DIR flag.
type orgFlag []orgDir

type orgDir struct{ mspID, dir string }

func (o *orgFlag) String() string {
	s := make([]string, len(*o))
	for i, x := range *o {
		s[i] = x.mspID + "=" + x.dir
	}
	return strings.Join(s, ",")
}

func (o *orgFlag) Set(v string) error {
	id, dir, ok := strings.Cut(v, "=")
	if !ok || id == "" || dir == "" {
		return fmt.Errorf("want MSPID=DIR, got %q", v)
	}
	*o = append(*o, orgDir{id, dir})
	return nil
}
