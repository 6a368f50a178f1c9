package protos_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	pb "github.com/kafkaconsensus/kafkaconsensus/protos/peer"
)

// wire joins hex fragments, ignoring spaces, so that each fragment can carry
// its own derivation in a comment.
func wire(fragments ...string) string {
	return strings.ReplaceAll(strings.Join(fragments, ""), " ", "")
}

// The expected bytes below are derived by hand from the field numbers and
// wire types of Fabric's fabric-protos: a field's tag is the varint
// (field_number << 3 | wire_type), with wire type 0 for varints (ints,
// enums) and 2 for length-delimited values (bytes, strings, messages),
// followed by the value: a varint, or a varint length and that many bytes.
// Varints are little-endian groups of 7 bits, the high bit set on every byte
// but the last: 300 = 0b10_0101100 → ac 02. Negative int32 and int64 values
// are sign-extended to 64 bits, so always 10 bytes: -1 → ff ff ff ff ff ff ff
// ff ff 01. proto3 omits scalar fields at their zero value, but not a oneof
// member that is set.
var wireCases = []struct {
	name string
	msg  proto.Message
	hex  string
}{
	{"common.Envelope", &cb.Envelope{Payload: []byte("abc"), Signature: []byte("de")}, wire(
		"0a 03 616263", // field 1 (payload), wire type 2: tag 1<<3|2 = 0a, len 3, "abc"
		"12 02 6465",   // field 2 (signature), wire type 2: tag 2<<3|2 = 12, len 2, "de"
	)},
	{"common.Envelope without signature", &cb.Envelope{Payload: []byte("abc")}, wire(
		"0a 03 616263", // field 1 (payload), len 3; empty signature omitted
	)},
	{"common.Payload", &cb.Payload{
		Header: &cb.Header{ChannelHeader: []byte("c"), SignatureHeader: []byte("s")},
		Data:   []byte("d"),
	}, wire(
		"0a 06",    // field 1 (header), wire type 2, len 6:
		"0a 01 63", //   field 1 (channel_header), len 1, "c"
		"12 01 73", //   field 2 (signature_header), len 1, "s"
		"12 01 64", // field 2 (data), wire type 2, len 1, "d"
	)},
	{"common.ChannelHeader", &cb.ChannelHeader{
		Type:      int32(cb.HeaderType_CONFIG),
		Version:   -1,
		Timestamp: &timestamppb.Timestamp{Seconds: 1, Nanos: 2},
		ChannelId: "mychannel",
	}, wire(
		"08 01",                            // field 1 (type), wire type 0: tag 1<<3|0 = 08, CONFIG = 1
		"10 ff ff ff ff ff ff ff ff ff 01", // field 2 (version), wire type 0: int32 -1 sign-extended to 64 bits, 10 bytes
		"1a 04",                            // field 3 (timestamp), wire type 2: tag 3<<3|2 = 1a, len 4:
		"08 01",                            //   field 1 (seconds) = 1
		"10 02",                            //   field 2 (nanos) = 2
		"22 09 6d796368616e6e656c",         // field 4 (channel_id), wire type 2: tag 4<<3|2 = 22, len 9, "mychannel"
	)},
	{"common.SignatureHeader", &cb.SignatureHeader{Creator: []byte("c"), Nonce: []byte("n")}, wire(
		"0a 01 63", // field 1 (creator), len 1, "c"
		"12 01 6e", // field 2 (nonce), len 1, "n"
	)},
	{"common.BlockHeader", &cb.BlockHeader{Number: 128, PreviousHash: []byte{1, 2}, DataHash: []byte{0xff}}, wire(
		"08 80 01",   // field 1 (number), wire type 0: 128 = 0b1_0000000 → 80 01
		"12 02 0102", // field 2 (previous_hash), wire type 2, len 2
		"1a 01 ff",   // field 3 (data_hash), wire type 2: tag 3<<3|2 = 1a, len 1
	)},
	{"common.Block", &cb.Block{
		Header:   &cb.BlockHeader{Number: 1},
		Data:     &cb.BlockData{Data: [][]byte{[]byte("x")}},
		Metadata: &cb.BlockMetadata{Metadata: [][]byte{nil, []byte("m")}},
	}, wire(
		"0a 02 08 01",    // field 1 (header), len 2: field 1 (number) = 1; hashes empty, omitted
		"12 03 0a 01 78", // field 2 (data), len 3: field 1 (data, repeated bytes), len 1, "x"
		"1a 05",          // field 3 (metadata), len 5:
		"0a 00",          //   field 1 (metadata[0]), len 0: an empty element is still written
		"0a 01 6d",       //   field 1 (metadata[1]), len 1, "m"
	)},
	{"common.Metadata", &cb.Metadata{
		Value:      []byte("v"),
		Signatures: []*cb.MetadataSignature{{SignatureHeader: []byte("h"), Signature: []byte("s")}},
	}, wire(
		"0a 01 76", // field 1 (value), len 1, "v"
		"12 06",    // field 2 (signatures[0]), wire type 2, len 6:
		"0a 01 68", //   field 1 (signature_header), len 1, "h"
		"12 01 73", //   field 2 (signature), len 1, "s"
	)},
	{"common.LastConfig", &cb.LastConfig{Index: 2}, wire(
		"08 02", // field 1 (index), wire type 0, 2
	)},
	{"common.LastConfig zero", &cb.LastConfig{}, ""}, // index 0 omitted: no bytes at all
	{"orderer.KafkaMessage regular", &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload:        []byte("ab"),
		ConfigSeq:      5,
		Class:          ab.KafkaMessageRegular_CONFIG,
		OriginalOffset: 300,
	}}}, wire(
		"0a 0b",      // field 1 (regular), wire type 2, len 11:
		"0a 02 6162", //   field 1 (payload), len 2, "ab"
		"10 05",      //   field 2 (config_seq), wire type 0: tag 2<<3|0 = 10, 5
		"18 02",      //   field 3 (class), wire type 0: tag 3<<3|0 = 18, CONFIG = 2
		"20 ac 02",   //   field 4 (original_offset), wire type 0: tag 4<<3|0 = 20, 300 → ac 02
	)},
	{"orderer.KafkaMessage regular first submission", &ab.KafkaMessage{Type: &ab.KafkaMessage_Regular{Regular: &ab.KafkaMessageRegular{
		Payload: []byte("ab"),
		Class:   ab.KafkaMessageRegular_NORMAL,
	}}}, wire(
		"0a 06",      // field 1 (regular), len 6:
		"0a 02 6162", //   field 1 (payload), len 2, "ab"
		"18 01",      //   field 3 (class), NORMAL = 1; config_seq and original_offset 0, omitted
	)},
	{"orderer.KafkaMessage time_to_cut", &ab.KafkaMessage{Type: &ab.KafkaMessage_TimeToCut{TimeToCut: &ab.KafkaMessageTimeToCut{BlockNumber: 300}}}, wire(
		"12 03",    // field 2 (time_to_cut), wire type 2, len 3:
		"08 ac 02", //   field 1 (block_number), 300 → ac 02
	)},
	{"orderer.KafkaMessage connect", &ab.KafkaMessage{Type: &ab.KafkaMessage_Connect{Connect: &ab.KafkaMessageConnect{}}}, wire(
		"1a 00", // field 3 (connect), wire type 2, len 0: a set oneof is written even when empty
	)},
	{"orderer.KafkaMetadata", &ab.KafkaMetadata{
		LastOffsetPersisted:         -1,
		LastOriginalOffsetProcessed: 2,
		LastResubmittedConfigOffset: 7,
	}, wire(
		"08 ff ff ff ff ff ff ff ff ff 01", // field 1 (last_offset_persisted), int64 -1: 10-byte varint
		"10 02",                            // field 2 (last_original_offset_processed), 2
		"18 07",                            // field 3 (last_resubmitted_config_offset), 7
	)},
	{"orderer.KafkaMetadata with log identity", &ab.KafkaMetadata{
		LastOffsetPersisted: 5,
		TopicId:             []byte{0xaa, 0xbb},
		Persisted:           &ab.LogFingerprint{Offset: 5, LeaderEpoch: 1, ValueHash: []byte{0xcc}},
	}, wire(
		"08 05",    // field 1 (last_offset_persisted), 5
		"a2 06 02", // field 100 (topic_id), wire type 2: tag 100<<3|2 = 802 → a2 06, len 2
		"aabb",     //   the topic ID
		"aa 06 07", // field 101 (persisted), wire type 2: tag 101<<3|2 = 810 → aa 06, len 7:
		"08 05",    //   field 1 (offset), 5
		"10 01",    //   field 2 (leader_epoch), 1
		"1a 01 cc", //   field 3 (value_hash), len 1
	)},
	{"orderer.SeekInfo", &ab.SeekInfo{
		Start:    &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: 5}}},
		Stop:     &ab.SeekPosition{Type: &ab.SeekPosition_Newest{Newest: &ab.SeekNewest{}}},
		Behavior: ab.SeekInfo_FAIL_IF_NOT_READY,
	}, wire(
		"0a 04", // field 1 (start), wire type 2, len 4:
		"1a 02", //   SeekPosition field 3 (specified), len 2:
		"08 05", //     field 1 (number), 5
		"12 02", // field 2 (stop), wire type 2, len 2:
		"0a 00", //   SeekPosition field 1 (newest), len 0
		"18 01", // field 3 (behavior), wire type 0, FAIL_IF_NOT_READY = 1; error_response STRICT = 0 omitted
	)},
	{"orderer.BroadcastResponse", &ab.BroadcastResponse{Status: cb.Status_NOT_FOUND, Info: "x"}, wire(
		"08 94 03", // field 1 (status), wire type 0: 404 = 0b11_0010100 → 94 03
		"12 01 78", // field 2 (info), wire type 2, len 1, "x"
	)},
	{"orderer.DeliverResponse status", &ab.DeliverResponse{Type: &ab.DeliverResponse_Status{Status: cb.Status_SUCCESS}}, wire(
		"08 c8 01", // field 1 (status), wire type 0: 200 = 0b1_1001000 → c8 01
	)},
	{"orderer.DeliverResponse status UNKNOWN", &ab.DeliverResponse{Type: &ab.DeliverResponse_Status{Status: cb.Status_UNKNOWN}}, wire(
		"08 00", // field 1 (status), 0: written because it is a set oneof member
	)},
	{"orderer.DeliverResponse block", &ab.DeliverResponse{Type: &ab.DeliverResponse_Block{Block: &cb.Block{Header: &cb.BlockHeader{Number: 1}}}}, wire(
		"12 04", // field 2 (block), wire type 2, len 4:
		"0a 02", //   Block field 1 (header), len 2:
		"08 01", //     field 1 (number), 1
	)},
	{"msp.SerializedIdentity", &msp.SerializedIdentity{Mspid: "Org1MSP", IdBytes: []byte("cert")}, wire(
		"0a 07 4f7267314d5350", // field 1 (mspid), wire type 2, len 7, "Org1MSP"
		"12 04 63657274",       // field 2 (id_bytes), wire type 2, len 4, "cert"
	)},
	{"common.MSPPrincipal", &msp.MSPPrincipal{PrincipalClassification: msp.MSPPrincipal_ORGANIZATION_UNIT, Principal: []byte("p")}, wire(
		"08 01",    // field 1 (principal_classification), ORGANIZATION_UNIT = 1
		"12 01 70", // field 2 (principal), len 1, "p"
	)},
	{"common.SignaturePolicy n_out_of", &cb.SignaturePolicy{Type: &cb.SignaturePolicy_NOutOf_{NOutOf: &cb.SignaturePolicy_NOutOf{
		N: 1,
		Rules: []*cb.SignaturePolicy{
			{Type: &cb.SignaturePolicy_SignedBy{SignedBy: 0}},
			{Type: &cb.SignaturePolicy_SignedBy{SignedBy: 1}},
		},
	}}}, wire(
		"12 0a", // field 2 (n_out_of), wire type 2, len 10:
		"08 01", //   field 1 (n), 1
		"12 02", //   field 2 (rules[0]), len 2:
		"08 00", //     field 1 (signed_by), 0: written because it is a set oneof member
		"12 02", //   field 2 (rules[1]), len 2:
		"08 01", //     field 1 (signed_by), 1
	)},
	{"common.Config", &cb.Config{Sequence: 1, ChannelGroup: &cb.ConfigGroup{}}, wire(
		"08 01", // field 1 (sequence), wire type 0, 1
		"12 00", // field 2 (channel_group), wire type 2, len 0: a set empty message is written
	)},
	{"common.ConfigGroup", &cb.ConfigGroup{
		Version:   1,
		Values:    map[string]*cb.ConfigValue{"A": {Version: 2}},
		ModPolicy: "x",
	}, wire(
		"08 01",    // field 1 (version), 1
		"1a 07",    // field 3 (values), one map entry, wire type 2, len 7:
		"0a 01 41", //   entry field 1 (key), len 1, "A"
		"12 02",    //   entry field 2 (value), len 2: a ConfigValue
		"08 02",    //     field 1 (version), 2
		"2a 01 78", // field 5 (mod_policy), wire type 2: tag 5<<3|2 = 2a, len 1, "x"
	)},
	{"common.ConfigValue", &cb.ConfigValue{Version: 1, Value: []byte("v"), ModPolicy: "Admins"}, wire(
		"08 01",              // field 1 (version), 1
		"12 01 76",           // field 2 (value), len 1, "v"
		"1a 06 41646d696e73", // field 3 (mod_policy), len 6, "Admins"
	)},
	{"common.ConfigUpdateEnvelope", &cb.ConfigUpdateEnvelope{
		ConfigUpdate: []byte("u"),
		Signatures:   []*cb.ConfigSignature{{SignatureHeader: []byte("h"), Signature: []byte("s")}},
	}, wire(
		"0a 01 75", // field 1 (config_update), len 1, "u"
		"12 06",    // field 2 (signatures[0]), len 6:
		"0a 01 68", //   field 1 (signature_header), len 1, "h"
		"12 01 73", //   field 2 (signature), len 1, "s"
	)},
	{"orderer.BatchSize", &ab.BatchSize{MaxMessageCount: 10, AbsoluteMaxBytes: 10 << 20, PreferredMaxBytes: 512 << 10}, wire(
		"08 0a",          // field 1 (max_message_count), 10
		"10 80 80 80 05", // field 2 (absolute_max_bytes), 10485760 = 5<<21: three empty 7-bit groups, then 5
		"18 80 80 20",    // field 3 (preferred_max_bytes), 524288 = 1<<19 = 0x20<<14
	)},
	{"orderer.BatchTimeout", &ab.BatchTimeout{Timeout: "1s"}, wire(
		"0a 02 3173", // field 1 (timeout), len 2, "1s"
	)},
	{"msp.MSPConfig", &msp.MSPConfig{Type: 0, Config: []byte("c")}, wire(
		"12 01 63", // field 2 (config), len 1, "c"; type FABRIC = 0 omitted
	)},
	{"protos.AnchorPeer", &pb.AnchorPeer{Host: "h", Port: 31151}, wire(
		"0a 01 68",    // field 1 (host), len 1, "h"
		"10 af f3 01", // field 2 (port), 31151 = 47 + 115<<7 + 1<<14 → af f3 01
	)},
}

func TestWireFormat(t *testing.T) {
	for _, tc := range wireCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if h := hex.EncodeToString(got); h != tc.hex {
				t.Errorf("Marshal:\n got %s\nwant %s", h, tc.hex)
			}
			want, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatalf("bad expected hex: %v", err)
			}
			decoded := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(want, decoded); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !proto.Equal(decoded, tc.msg) {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.hex, decoded, tc.msg)
			}
		})
	}
}

// TestFullNames pins the names Fabric's tools look messages, enums and the
// service up by.
func TestFullNames(t *testing.T) {
	for _, tc := range []struct {
		msg  proto.Message
		want string
	}{
		{&cb.Envelope{}, "common.Envelope"},
		{&cb.Payload{}, "common.Payload"},
		{&cb.Header{}, "common.Header"},
		{&cb.ChannelHeader{}, "common.ChannelHeader"},
		{&cb.SignatureHeader{}, "common.SignatureHeader"},
		{&cb.Block{}, "common.Block"},
		{&cb.BlockHeader{}, "common.BlockHeader"},
		{&cb.BlockData{}, "common.BlockData"},
		{&cb.BlockMetadata{}, "common.BlockMetadata"},
		{&cb.Metadata{}, "common.Metadata"},
		{&cb.MetadataSignature{}, "common.MetadataSignature"},
		{&cb.LastConfig{}, "common.LastConfig"},
		{&cb.Policy{}, "common.Policy"},
		{&cb.SignaturePolicyEnvelope{}, "common.SignaturePolicyEnvelope"},
		{&cb.SignaturePolicy{}, "common.SignaturePolicy"},
		{&cb.SignaturePolicy_NOutOf{}, "common.SignaturePolicy.NOutOf"},
		{&cb.ImplicitMetaPolicy{}, "common.ImplicitMetaPolicy"},
		{&msp.MSPPrincipal{}, "common.MSPPrincipal"},
		{&msp.MSPRole{}, "common.MSPRole"},
		{&msp.OrganizationUnit{}, "common.OrganizationUnit"},
		{&msp.SerializedIdentity{}, "msp.SerializedIdentity"},
		{&ab.KafkaMessage{}, "orderer.KafkaMessage"},
		{&ab.KafkaMessageRegular{}, "orderer.KafkaMessageRegular"},
		{&ab.KafkaMessageTimeToCut{}, "orderer.KafkaMessageTimeToCut"},
		{&ab.KafkaMessageConnect{}, "orderer.KafkaMessageConnect"},
		{&ab.KafkaMetadata{}, "orderer.KafkaMetadata"},
		{&ab.LogFingerprint{}, "orderer.LogFingerprint"},
		{&ab.BroadcastResponse{}, "orderer.BroadcastResponse"},
		{&ab.SeekInfo{}, "orderer.SeekInfo"},
		{&ab.SeekPosition{}, "orderer.SeekPosition"},
		{&ab.DeliverResponse{}, "orderer.DeliverResponse"},
		{&cb.ConfigEnvelope{}, "common.ConfigEnvelope"},
		{&cb.Config{}, "common.Config"},
		{&cb.ConfigGroup{}, "common.ConfigGroup"},
		{&cb.ConfigValue{}, "common.ConfigValue"},
		{&cb.ConfigPolicy{}, "common.ConfigPolicy"},
		{&cb.ConfigUpdateEnvelope{}, "common.ConfigUpdateEnvelope"},
		{&cb.ConfigUpdate{}, "common.ConfigUpdate"},
		{&cb.ConfigSignature{}, "common.ConfigSignature"},
		{&cb.HashingAlgorithm{}, "common.HashingAlgorithm"},
		{&cb.BlockDataHashingStructure{}, "common.BlockDataHashingStructure"},
		{&cb.OrdererAddresses{}, "common.OrdererAddresses"},
		{&cb.Consenter{}, "common.Consenter"},
		{&cb.Orderers{}, "common.Orderers"},
		{&cb.Consortium{}, "common.Consortium"},
		{&cb.Capabilities{}, "common.Capabilities"},
		{&cb.Capability{}, "common.Capability"},
		{&cb.OrdererBlockMetadata{}, "common.OrdererBlockMetadata"},
		{&ab.ConsensusType{}, "orderer.ConsensusType"},
		{&ab.BatchSize{}, "orderer.BatchSize"},
		{&ab.BatchTimeout{}, "orderer.BatchTimeout"},
		{&ab.KafkaBrokers{}, "orderer.KafkaBrokers"},
		{&ab.ChannelRestrictions{}, "orderer.ChannelRestrictions"},
		{&msp.MSPConfig{}, "msp.MSPConfig"},
		{&msp.FabricMSPConfig{}, "msp.FabricMSPConfig"},
		{&msp.FabricCryptoConfig{}, "msp.FabricCryptoConfig"},
		{&msp.SigningIdentityInfo{}, "msp.SigningIdentityInfo"},
		{&msp.KeyInfo{}, "msp.KeyInfo"},
		{&msp.FabricOUIdentifier{}, "msp.FabricOUIdentifier"},
		{&msp.FabricNodeOUs{}, "msp.FabricNodeOUs"},
		{&pb.AnchorPeers{}, "protos.AnchorPeers"},
		{&pb.AnchorPeer{}, "protos.AnchorPeer"},
		{&pb.APIResource{}, "protos.APIResource"},
		{&pb.ACLs{}, "protos.ACLs"},
	} {
		if got := string(tc.msg.ProtoReflect().Descriptor().FullName()); got != tc.want {
			t.Errorf("%T: full name %q, want %q", tc.msg, got, tc.want)
		}
	}
	for _, tc := range []struct{ got, want string }{
		{string(cb.Status(0).Descriptor().FullName()), "common.Status"},
		{string(cb.HeaderType(0).Descriptor().FullName()), "common.HeaderType"},
		{string(cb.BlockMetadataIndex(0).Descriptor().FullName()), "common.BlockMetadataIndex"},
		{string(ab.KafkaMessageRegular_Class(0).Descriptor().FullName()), "orderer.KafkaMessageRegular.Class"},
		{string(ab.SeekInfo_SeekBehavior(0).Descriptor().FullName()), "orderer.SeekInfo.SeekBehavior"},
		{string(ab.ConsensusType_State(0).Descriptor().FullName()), "orderer.ConsensusType.State"},
	} {
		if tc.got != tc.want {
			t.Errorf("enum full name %q, want %q", tc.got, tc.want)
		}
	}
}

// TestGRPCNames pins the AtomicBroadcast service and method names Fabric's
// clients call.
func TestGRPCNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ab.AtomicBroadcast_Broadcast_FullMethodName, "/orderer.AtomicBroadcast/Broadcast"},
		{ab.AtomicBroadcast_Deliver_FullMethodName, "/orderer.AtomicBroadcast/Deliver"},
		{ab.AtomicBroadcast_ServiceDesc.ServiceName, "orderer.AtomicBroadcast"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	streams := ab.AtomicBroadcast_ServiceDesc.Streams
	if len(streams) != 2 {
		t.Fatalf("%d streams, want 2", len(streams))
	}
	for i, name := range []string{"Broadcast", "Deliver"} {
		s := streams[i]
		if s.StreamName != name || !s.ClientStreams || !s.ServerStreams {
			t.Errorf("stream %d = %s (client %v, server %v), want bidirectional %s", i, s.StreamName, s.ClientStreams, s.ServerStreams, name)
		}
	}
}
