package deploy_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// marked is a block of the guide marked as taken from a file:
//
//	<!-- from deploy/scripts/rehearse.sh -->
//	```sh
//	...
//	```
var marked = regexp.MustCompile("(?s)<!-- from (\\S+) -->\n```sh\n(.*?)```")

// TestGuideSnippets checks that every marked block of the guide is code of
// the file it names (a path from the repository's root): each of its
// lines, comments aside, is a line of that file, in the same order. So
// the guide shows what rehearse.sh runs.
func TestGuideSnippets(t *testing.T) {
	found := marked.FindAllStringSubmatch(readFile(t, "README.md"), -1)
	if len(found) == 0 {
		t.Fatal("no marked block in README.md")
	}
	for _, m := range found {
		lines := trimmedLines(readFile(t, filepath.Join(root, m[1])))
		at := 0
		for _, want := range trimmedLines(m[2]) {
			if strings.HasPrefix(want, "#") {
				continue
			}
			for at < len(lines) && lines[at] != want {
				at++
			}
			if at == len(lines) {
				t.Errorf("README.md block from %s: line %q is not in the file (after the lines before it)", m[1], want)
				break
			}
			at++
		}
	}
}

func trimmedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// codeBlock is a fenced block of the guide.
var codeBlock = regexp.MustCompile("(?s)```(\\w*)\n(.*?)```")

// TestGuideCommands checks the flags of every orderer command in the
// guide's shell blocks and in the kit's scripts.
func TestGuideCommands(t *testing.T) {
	var invs []invocation
	for i, m := range codeBlock.FindAllStringSubmatch(readFile(t, "README.md"), -1) {
		if m[1] == "sh" {
			invs = append(invs, shellInvocations("README.md block "+string(rune('A'+i%26)), m[2])...)
		}
	}
	for _, s := range []string{"orderer-crypto.sh", "kafka-pki.sh", "kafka-acls.sh", "rehearse.sh"} {
		invs = append(invs, shellInvocations("scripts/"+s, readFile(t, filepath.Join("scripts", s)))...)
	}
	subs := make(map[string]bool)
	for _, inv := range invs {
		checkFlags(t, inv)
		subs[inv.sub] = true
	}
	for _, want := range []string{"cryptogen", "genesis", "start", "kafka", "broadcast", "deliver"} {
		if !subs[want] {
			t.Errorf("no orderer %s command found in the guide and scripts: the parser missed them", want)
		}
	}
}

// TestGuideMetrics checks that every metric the guide names is one the
// node exports, as the Prometheus exporter names it, and that the guide
// names each of them.
func TestGuideMetrics(t *testing.T) {
	guide := readFile(t, "README.md")
	exported := map[string]bool{
		consensus.MetricLastOffsetPersisted:            true,
		consensus.MetricBlocksWritten + "_total":       true,
		consensus.MetricEnvelopesWritten + "_total":    true,
		consensus.MetricEnvelopesRejected + "_total":   true,
		consensus.MetricRecordsSkipped + "_total":      true,
		consensus.MetricOrderLatency + "_seconds":      true,
		consensus.MetricBlockFillDuration + "_seconds": true,
	}
	for name := range exported {
		if !strings.Contains(guide, "`"+name) {
			t.Errorf("README.md does not name the metric %s", name)
		}
	}
	re := regexp.MustCompile("`((?:consensus_|kafkaconsensus_|blockcutter_)[a-z_]+)")
	for _, m := range re.FindAllStringSubmatch(guide, -1) {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
		if !exported[name] {
			t.Errorf("README.md names %s, which the node does not export", m[1])
		}
	}
	reasons := map[string][]string{
		"kafkaconsensus_envelopes_rejected_total": {"invalid", "too_large", "not_ready", "halted", "stale_config", "canceled"},
	}
	for k := consensus.NoteSkipped; k <= consensus.NoteFutureTimeToCut; k++ {
		reasons["kafkaconsensus_records_skipped_total"] = append(reasons["kafkaconsensus_records_skipped_total"], k.String())
	}
	for metric, rs := range reasons {
		row := guide[strings.Index(guide, "| `"+metric):]
		row = row[:strings.Index(row, "\n")]
		for _, r := range rs {
			if !strings.Contains(row, "`"+r+"`") {
				t.Errorf("README.md: the row of %s does not explain reason %s", metric, r)
			}
		}
	}
}

// TestGuideLinked checks that the main README links the guide.
func TestGuideLinked(t *testing.T) {
	if !strings.Contains(readFile(t, filepath.Join(root, "README.md")), "(deploy/README.md)") {
		t.Error("README.md does not link deploy/README.md")
	}
}
