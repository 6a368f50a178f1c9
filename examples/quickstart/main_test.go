package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
)

func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-n", "300", "-clients", "4"}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()

	m := regexp.MustCompile(`(?m)^\s+blocks\s+(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no blocks line in the summary:\n%s", text)
	}
	if blocks, _ := strconv.Atoi(m[1]); blocks < 2 {
		t.Errorf("blocks = %d, want the genesis block and at least one more", blocks)
	}
	if !strings.Contains(text, "300 acknowledged, 300 in blocks, 0 missing, 0 duplicated") {
		t.Errorf("envelope accounting line missing or wrong:\n%s", text)
	}
	if !strings.Contains(text, "orderer2 halted at") {
		t.Errorf("no restart in the summary:\n%s", text)
	}

	tips := regexp.MustCompile(`(?m)^\s+(orderer\d+)\s+(\d+)\s+([0-9a-f]{16})\s*$`).FindAllStringSubmatch(text, -1)
	if len(tips) != 3 {
		t.Fatalf("%d node lines in the summary, want 3:\n%s", len(tips), text)
	}
	for _, tip := range tips[1:] {
		if tip[2] != tips[0][2] || tip[3] != tips[0][3] {
			t.Errorf("%s tip %s %s, %s tip %s %s: want the same", tip[1], tip[2], tip[3], tips[0][1], tips[0][2], tips[0][3])
		}
	}
	if !strings.Contains(text, "verified:") {
		t.Errorf("no verification line:\n%s", text)
	}
}

func TestFlagValidation(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "-n 0: need at least 1 envelope"},
		{[]string{"-nodes", "0"}, "-nodes 0: need at least 1 node"},
		{[]string{"-clients", "-3"}, "-clients -3: need at least 1 client"},
		{[]string{"-size", "-1"}, "-size -1: must be between 0"},
		{[]string{"-size", "100000000"}, "-size 100000000: must be between 0"},
		{[]string{"-batch-timeout", "0s"}, "-batch-timeout 0s: must be positive"},
		{[]string{"-max-message-count", "0"}, "-max-message-count 0: must be between 1"},
		{[]string{"-n", "ten"}, `invalid value "ten" for flag -n`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("run(%q) = %v, want errUsage", tt.args, err)
			}
		})
	}

	t.Run("several at once", func(t *testing.T) {
		err := run(context.Background(), []string{"-n", "0", "-nodes", "0"}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "-n 0") || !strings.Contains(err.Error(), "-nodes 0") {
			t.Fatalf("got %v, want both errors", err)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-h"}, &out); err != nil {
			t.Fatalf("run(-h) = %v, want nil", err)
		}
		if !strings.Contains(out.String(), "-max-message-count") {
			t.Errorf("usage does not list the flags:\n%s", out.String())
		}
	})
}

func TestRunExistingKafka(t *testing.T) {
	k, err := consensustest.StartKafka()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-n", "50", "-clients", "2", "-nodes", "2", "-restart=false", "-brokers", strings.Join(k.Addrs(), ","), "-data", t.TempDir()}
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "50 acknowledged, 50 in blocks, 0 missing, 0 duplicated") {
		t.Errorf("envelope accounting line missing or wrong:\n%s", out.String())
	}
}
