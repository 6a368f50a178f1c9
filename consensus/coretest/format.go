package coretest

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// maxShown is how many characters of a payload the formatters show.
const maxShown = 32

// FormatBlock describes block b in one line: its number, then "config"
// for a config block (its LAST_CONFIG slot names itself) or its envelopes'
// payloads in brackets, then the offset its ORDERER metadata persisted:
//
//	block 3 [a b c] persisted=7
//	block 4 config persisted=8
//
// A payload is shown as it is when it is printable text without spaces,
// quoted otherwise, and cut after 32 characters.
func FormatBlock(b *cb.Block) string {
	n := b.GetHeader().GetNumber()
	var sb strings.Builder
	fmt.Fprintf(&sb, "block %d ", n)
	if lc, err := protoutil.LastConfigIndex(b); err == nil && lc == n {
		sb.WriteString("config")
	} else {
		sb.WriteByte('[')
		for i, d := range b.GetData().GetData() {
			if i > 0 {
				sb.WriteByte(' ')
			}
			env, err := protoutil.UnmarshalEnvelope(d)
			if err != nil {
				sb.WriteString("<not an envelope>")
				continue
			}
			sb.WriteString(showPayload(env.Payload))
		}
		sb.WriteByte(']')
	}
	if md, err := consensus.KafkaMetadataOf(b); err == nil && md != nil {
		fmt.Fprintf(&sb, " persisted=%d", md.LastOffsetPersisted)
	}
	return sb.String()
}

// FormatReady describes what a step of a core asked of its node, in one
// line, its items separated by "; ": the blocks (FormatBlock), the
// messages to produce ("produce ttc 2", "produce normal a seq=1 orig=4"),
// the configurations computed again ("resubmit config seq=2 orig=7"),
// the timer action ("timer start", "timer stop") and the notes ("note
// stale_ttc@5"). It returns "" for a Ready that asks nothing.
func FormatReady(r *consensus.Ready) string {
	var items []string
	for _, b := range r.Blocks {
		items = append(items, FormatBlock(b.Block))
	}
	for _, m := range r.Produce {
		items = append(items, "produce "+FormatMessage(m))
	}
	for _, rs := range r.ConfigResubmissions {
		items = append(items, fmt.Sprintf("resubmit config seq=%d orig=%d", rs.ConfigSeq, rs.OriginalOffset))
	}
	if r.Timer != consensus.TimerKeep {
		items = append(items, "timer "+r.Timer.String())
	}
	for _, n := range r.Notes {
		items = append(items, fmt.Sprintf("note %v@%d", n.Kind, n.Offset))
	}
	return strings.Join(items, "; ")
}

// FormatMessage describes an orderer message: "ttc <block>", "connect",
// "normal <payload> seq=<n>" or "config <payload> seq=<n>", with
// " orig=<offset>" for a re-submission.
func FormatMessage(m *ab.KafkaMessage) string {
	switch x := m.GetType().(type) {
	case *ab.KafkaMessage_TimeToCut:
		return fmt.Sprintf("ttc %d", x.TimeToCut.GetBlockNumber())
	case *ab.KafkaMessage_Connect:
		return "connect"
	case *ab.KafkaMessage_Regular:
		class := "normal"
		if x.Regular.GetClass() == ab.KafkaMessageRegular_CONFIG {
			class = "config"
		}
		payload := "<not an envelope>"
		if env, err := protoutil.UnmarshalEnvelope(x.Regular.GetPayload()); err == nil {
			payload = showPayload(env.Payload)
		}
		s := fmt.Sprintf("%s %s seq=%d", class, payload, x.Regular.GetConfigSeq())
		if o := x.Regular.GetOriginalOffset(); o != 0 {
			s += fmt.Sprintf(" orig=%d", o)
		}
		return s
	}
	return "unknown message"
}

func showPayload(p []byte) string {
	s := string(p)
	cut := false
	if utf8.RuneCountInString(s) > maxShown {
		s, cut = string([]rune(s)[:maxShown]), true
	}
	plain := s != "" && utf8.ValidString(s)
	for _, r := range s {
		if r == ' ' || !strconv.IsPrint(r) {
			plain = false
			break
		}
	}
	if !plain {
		s = strconv.Quote(s)
	}
	if cut {
		s += "…"
	}
	return s
}
