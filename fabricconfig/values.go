package fabricconfig

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	pb "github.com/kafkaconsensus/kafkaconsensus/protos/peer"
)

// Keys of the configuration tree's groups, as Fabric names them.
const (
	// ChannelGroupKey names the root group.
	ChannelGroupKey = "Channel"
	// ApplicationGroupKey names the group of the application organisations.
	ApplicationGroupKey = "Application"
	// OrdererGroupKey names the group of the ordering organisations.
	OrdererGroupKey = "Orderer"
)

// Keys of the configuration tree's values, as Fabric names them.
const (
	// HashingAlgorithmKey is the channel's common.HashingAlgorithm.
	HashingAlgorithmKey = "HashingAlgorithm"
	// BlockDataHashingStructureKey is the channel's
	// common.BlockDataHashingStructure.
	BlockDataHashingStructureKey = "BlockDataHashingStructure"
	// OrdererAddressesKey is the channel's common.OrdererAddresses.
	OrdererAddressesKey = "OrdererAddresses"
	// ConsortiumKey is the channel's common.Consortium.
	ConsortiumKey = "Consortium"
	// OrderersKey is the channel's common.Orderers (BFT consenters).
	OrderersKey = "Orderers"
	// CapabilitiesKey is the common.Capabilities of the channel, the
	// Orderer group or the Application group.
	CapabilitiesKey = "Capabilities"
	// ConsensusTypeKey is the Orderer group's orderer.ConsensusType.
	ConsensusTypeKey = "ConsensusType"
	// BatchSizeKey is the Orderer group's orderer.BatchSize.
	BatchSizeKey = "BatchSize"
	// BatchTimeoutKey is the Orderer group's orderer.BatchTimeout.
	BatchTimeoutKey = "BatchTimeout"
	// KafkaBrokersKey is the Orderer group's orderer.KafkaBrokers.
	KafkaBrokersKey = "KafkaBrokers"
	// ChannelRestrictionsKey is the Orderer group's
	// orderer.ChannelRestrictions.
	ChannelRestrictionsKey = "ChannelRestrictions"
	// ACLsKey is the Application group's peer ACLs (protos.ACLs).
	ACLsKey = "ACLs"
	// MSPKey is an organisation's msp.MSPConfig.
	MSPKey = "MSP"
	// EndpointsKey is an orderer organisation's common.OrdererAddresses.
	EndpointsKey = "Endpoints"
	// AnchorPeersKey is an application organisation's protos.AnchorPeers.
	AnchorPeersKey = "AnchorPeers"
)

// ConsensusTypeKafka is the only consensus type this package serves.
const ConsensusTypeKafka = "kafka"

// Fabric's capability names and which of them this package implements.
var (
	channelCapabilities = []string{"V1_1", "V1_3", "V1_4_2", "V1_4_3", "V2_0"}
	ordererCapabilities = []string{"V1_1", "V1_4_2", "V2_0"}
	// Channel capabilities with which organisations may carry their own
	// orderer endpoints and OrdererAddresses may be empty.
	orgEndpointsCapabilities = []string{"V1_4_2", "V1_4_3", "V2_0"}
	// Application capabilities with which the Application group may carry
	// ACLs.
	aclCapabilities = []string{"V1_2", "V1_3", "V1_4_2", "V2_0", "V2_5"}
)

// Capabilities lists, by name and in order, the capabilities a channel
// requires of its peers and orderers ("V2_0"...).
type Capabilities struct {
	// Channel are the channel group's capabilities.
	Channel []string
	// Orderer are the Orderer group's capabilities.
	Orderer []string
	// Application are the Application group's capabilities.
	Application []string
}

// Organization is one organisation of the channel.
type Organization struct {
	// Group is the group the organisation belongs to: ApplicationGroupKey
	// or OrdererGroupKey.
	Group string
	// Name is the organisation's key in its group ("OrdererOrg").
	Name string
	// MSPID is the ID of its MSP ("OrdererMSP").
	MSPID string
	// Endpoints are an orderer organisation's ordering endpoints,
	// host:port.
	Endpoints []string
	// AnchorPeers are an application organisation's anchor peers,
	// host:port.
	AnchorPeers []string
}

// parseChannel reads the channel group's values and sub-groups into b and
// returns the MSPs of its organisations, each MSP ID once.
func (b *Bundle) parseChannel(ch *cb.ConfigGroup, o options) ([]*msp.MSP, error) {
	path := "/" + ChannelGroupKey
	orgEndpoints, err := b.parseChannelValues(ch, path)
	if err != nil {
		return nil, err
	}
	og, ok := ch.GetGroups()[OrdererGroupKey]
	if !ok {
		return nil, fmt.Errorf("no %s group", OrdererGroupKey)
	}
	for _, name := range sortedKeys(ch.GetGroups()) {
		if name != OrdererGroupKey && name != ApplicationGroupKey {
			return nil, fmt.Errorf("disallowed channel group: %s", name)
		}
	}
	if err := b.parseOrderer(og, path+"/"+OrdererGroupKey); err != nil {
		return nil, err
	}
	if len(b.capabilities.Orderer) == 0 && len(b.capabilities.Channel) > 0 {
		return nil, fmt.Errorf("cannot enable channel capabilities without orderer support first")
	}
	var orgs []orgGroup
	if ag, ok := ch.GetGroups()[ApplicationGroupKey]; ok {
		b.hasApplication = true
		if err := b.parseApplication(ag, path+"/"+ApplicationGroupKey); err != nil {
			return nil, err
		}
		orgs = orgGroups(ApplicationGroupKey, ag)
	}
	orgs = append(orgs, orgGroups(OrdererGroupKey, og)...)
	return b.parseOrgs(orgs, path, orgEndpoints, o)
}

// parseChannelValues reads the channel group's values, at path, into b and
// checks them. It reports whether the channel's capabilities allow
// organisations their own orderer endpoints.
func (b *Bundle) parseChannelValues(ch *cb.ConfigGroup, path string) (orgEndpoints bool, err error) {
	var (
		hashing  cb.HashingAlgorithm
		width    cb.BlockDataHashingStructure
		addrs    cb.OrdererAddresses
		orderers cb.Orderers
		cons     cb.Consortium
		caps     cb.Capabilities
	)
	if err := decodeValues(ch, path, map[string]proto.Message{
		HashingAlgorithmKey: &hashing, BlockDataHashingStructureKey: &width, OrdererAddressesKey: &addrs,
		OrderersKey: &orderers, ConsortiumKey: &cons, CapabilitiesKey: &caps,
	}); err != nil {
		return false, err
	}
	b.capabilities.Channel = sortedKeys(caps.GetCapabilities())
	if err := supported("Channel", b.capabilities.Channel, channelCapabilities); err != nil {
		return false, err
	}
	orgEndpoints = hasAny(b.capabilities.Channel, orgEndpointsCapabilities)
	switch {
	case hashing.GetName() != "SHA256":
		return false, fmt.Errorf("unknown hashing algorithm type: %q, want SHA256", hashing.GetName())
	case width.GetWidth() != math.MaxUint32:
		return false, fmt.Errorf("BlockDataHashStructure width %d, only MaxUint32 is supported", width.GetWidth())
	case !orgEndpoints && len(addrs.GetAddresses()) == 0:
		return false, fmt.Errorf("must set some OrdererAddresses")
	case len(orderers.GetConsenterMapping()) > 0:
		return false, fmt.Errorf("value %s/%s (BFT consenters) is not supported", path, OrderersKey)
	}
	b.ordererAddresses = addrs.GetAddresses()
	b.consortium = cons.GetName()
	return orgEndpoints, nil
}

// parseApplication reads the Application group's values, at path, into b
// and checks them against the capabilities: the orderer's must be set
// before the application's, and ACLs need an application capability that
// allows them. It must run after parseOrderer.
func (b *Bundle) parseApplication(ag *cb.ConfigGroup, path string) error {
	var (
		acls pb.ACLs
		caps cb.Capabilities
	)
	if err := decodeValues(ag, path, map[string]proto.Message{ACLsKey: &acls, CapabilitiesKey: &caps}); err != nil {
		return err
	}
	b.capabilities.Application = sortedKeys(caps.GetCapabilities())
	if len(b.capabilities.Orderer) == 0 && len(b.capabilities.Application) > 0 {
		return fmt.Errorf("cannot enable application capabilities without orderer support first")
	}
	if _, ok := ag.GetValues()[ACLsKey]; ok && !hasAny(b.capabilities.Application, aclCapabilities) {
		return fmt.Errorf("ACLs may not be specified without the required capability")
	}
	return nil
}

// orgGroups returns the organisations of group g, named parent, by name.
func orgGroups(parent string, g *cb.ConfigGroup) []orgGroup {
	var orgs []orgGroup
	for _, name := range sortedKeys(g.GetGroups()) {
		orgs = append(orgs, orgGroup{parent, name, g.GetGroups()[name]})
	}
	return orgs
}

// parseOrgs reads the organisations into b.orgs, in order, and returns
// their MSPs, built with o's MSP options, each MSP ID once: an MSP ID may
// be defined again only identically. channelPath and orgEndpoints are as
// for parseOrg.
func (b *Bundle) parseOrgs(orgs []orgGroup, channelPath string, orgEndpoints bool, o options) ([]*msp.MSP, error) {
	defined := make(map[string]*mspb.FabricMSPConfig)
	var msps []*msp.MSP
	for _, x := range orgs {
		org, fc, err := parseOrg(x, channelPath, orgEndpoints)
		if err != nil {
			return nil, err
		}
		b.orgs = append(b.orgs, org)
		if prev, ok := defined[org.MSPID]; ok {
			if !proto.Equal(prev, fc) {
				return nil, fmt.Errorf("attempted to define two different versions of MSP: %s", org.MSPID)
			}
			continue
		}
		defined[org.MSPID] = fc
		m, err := msp.New(mspConfig(fc), o.msp...)
		if err != nil {
			return nil, fmt.Errorf("%s org %s: %w", x.parent, x.name, err)
		}
		msps = append(msps, m)
	}
	return msps, nil
}

// parseOrderer reads the Orderer group's values into b.
func (b *Bundle) parseOrderer(og *cb.ConfigGroup, path string) error {
	var (
		ct       ab.ConsensusType
		bs       ab.BatchSize
		bt       ab.BatchTimeout
		brokers  ab.KafkaBrokers
		restrict ab.ChannelRestrictions
		orderers cb.Orderers
		caps     cb.Capabilities
	)
	if err := decodeValues(og, path, map[string]proto.Message{
		ConsensusTypeKey: &ct, BatchSizeKey: &bs, BatchTimeoutKey: &bt, KafkaBrokersKey: &brokers,
		ChannelRestrictionsKey: &restrict, OrderersKey: &orderers, CapabilitiesKey: &caps,
	}); err != nil {
		return err
	}
	b.capabilities.Orderer = sortedKeys(caps.GetCapabilities())
	if err := supported("Orderer", b.capabilities.Orderer, ordererCapabilities); err != nil {
		return err
	}
	if ct.GetType() != ConsensusTypeKafka {
		return fmt.Errorf("consensus type %q, this package serves %q", ct.GetType(), ConsensusTypeKafka)
	}
	if ct.GetState() != ab.ConsensusType_STATE_NORMAL {
		return fmt.Errorf("consensus state %s: consensus-type migration is not supported", ct.GetState())
	}
	if len(orderers.GetConsenterMapping()) > 0 {
		return fmt.Errorf("value %s/%s (BFT consenters) is not supported", path, OrderersKey)
	}
	switch {
	case bs.GetMaxMessageCount() == 0:
		return fmt.Errorf("attempted to set the batch size max message count to an invalid value: 0")
	case bs.GetAbsoluteMaxBytes() == 0:
		return fmt.Errorf("attempted to set the batch size absolute max bytes to an invalid value: 0")
	case bs.GetPreferredMaxBytes() == 0:
		return fmt.Errorf("attempted to set the batch size preferred max bytes to an invalid value: 0")
	case bs.GetPreferredMaxBytes() > bs.GetAbsoluteMaxBytes():
		return fmt.Errorf("attempted to set the batch size preferred max bytes (%d) greater than the absolute max bytes (%d)",
			bs.GetPreferredMaxBytes(), bs.GetAbsoluteMaxBytes())
	}
	timeout, err := time.ParseDuration(bt.GetTimeout())
	if err != nil {
		return fmt.Errorf("attempted to set the batch timeout to a invalid value: %w", err)
	}
	if timeout <= 0 {
		return fmt.Errorf("attempted to set the batch timeout to a non-positive value: %s", timeout)
	}
	if timeout > channelconfig.MaxBatchTimeout {
		return fmt.Errorf("attempted to set the batch timeout to %s, more than %s", timeout, channelconfig.MaxBatchTimeout)
	}
	for _, br := range brokers.GetBrokers() {
		if err := checkHostPort(br); err != nil {
			return fmt.Errorf("Kafka broker %q: %w", br, err)
		}
	}
	b.consensusType = ct.GetType()
	b.batchSize = channelconfig.BatchSize{
		MaxMessageCount:   bs.GetMaxMessageCount(),
		AbsoluteMaxBytes:  bs.GetAbsoluteMaxBytes(),
		PreferredMaxBytes: bs.GetPreferredMaxBytes(),
	}
	b.batchTimeout = timeout
	b.kafkaBrokers = brokers.GetBrokers()
	b.maxChannels = restrict.GetMaxCount()
	return nil
}

// orgGroup is an organisation's group and where it is.
type orgGroup struct {
	parent string // ApplicationGroupKey or OrdererGroupKey
	name   string
	group  *cb.ConfigGroup
}

// parseOrg reads an organisation's values. orgEndpoints tells whether the
// channel's capabilities allow an orderer organisation's Endpoints.
func parseOrg(x orgGroup, channelPath string, orgEndpoints bool) (Organization, *mspb.FabricMSPConfig, error) {
	path := channelPath + "/" + x.parent + "/" + x.name
	if len(x.group.GetGroups()) > 0 {
		return Organization{}, nil, fmt.Errorf("organisation %s: organisations do not support sub-groups", path)
	}
	var (
		mc        mspb.MSPConfig
		endpoints cb.OrdererAddresses
		anchors   pb.AnchorPeers
	)
	known := map[string]proto.Message{MSPKey: &mc}
	if x.parent == OrdererGroupKey {
		if _, ok := x.group.GetValues()[EndpointsKey]; ok && !orgEndpoints {
			return Organization{}, nil, fmt.Errorf("orderer org %s cannot contain endpoints value until V1_4_2+ capabilities have been enabled", x.name)
		}
		known[EndpointsKey] = &endpoints
	} else {
		known[AnchorPeersKey] = &anchors
	}
	if err := decodeValues(x.group, path, known); err != nil {
		return Organization{}, nil, err
	}
	fc, err := fabricMSPConfig(&mc)
	if err != nil {
		return Organization{}, nil, fmt.Errorf("organisation %s: %w", path, err)
	}
	if fc.GetName() == "" {
		return Organization{}, nil, fmt.Errorf("MSP for org %s has empty MSP ID", x.name)
	}
	org := Organization{Group: x.parent, Name: x.name, MSPID: fc.GetName(), Endpoints: endpoints.GetAddresses()}
	for _, e := range org.Endpoints {
		if err := checkHostPort(e); err != nil {
			return Organization{}, nil, fmt.Errorf("organisation %s: endpoint %q: %w", path, e, err)
		}
	}
	for _, a := range anchors.GetAnchorPeers() {
		org.AnchorPeers = append(org.AnchorPeers, net.JoinHostPort(a.GetHost(), strconv.Itoa(int(a.GetPort()))))
	}
	return org, fc, nil
}

// fabricMSPConfig decodes an MSPConfig of type FABRIC (0) and checks its
// crypto settings: SHA2 signatures and SHA256 identity identifiers, the
// only ones this package implements (empty means these defaults, as in
// Fabric).
func fabricMSPConfig(mc *mspb.MSPConfig) (*mspb.FabricMSPConfig, error) {
	if mc.GetType() != 0 {
		return nil, fmt.Errorf("unsupported msp type %d (only FABRIC, 0)", mc.GetType())
	}
	fc := new(mspb.FabricMSPConfig)
	if err := proto.Unmarshal(mc.GetConfig(), fc); err != nil {
		return nil, fmt.Errorf("decoding FabricMSPConfig: %w", err)
	}
	if f := fc.GetCryptoConfig().GetSignatureHashFamily(); f != "" && f != "SHA2" {
		return nil, fmt.Errorf("MSP %s: unsupported signature hash family %q (only SHA2)", fc.GetName(), f)
	}
	if f := fc.GetCryptoConfig().GetIdentityIdentifierHashFunction(); f != "" && f != "SHA256" {
		return nil, fmt.Errorf("MSP %s: unsupported identity identifier hash function %q (only SHA256)", fc.GetName(), f)
	}
	return fc, nil
}

// mspConfig converts a FabricMSPConfig into the msp package's
// configuration; the signing identity, which only a local MSP has, is
// left out.
func mspConfig(fc *mspb.FabricMSPConfig) *ccpb.MSPConfig {
	ou := func(x *mspb.FabricOUIdentifier) *ccpb.FabricOUIdentifier {
		if x == nil {
			return nil
		}
		return &ccpb.FabricOUIdentifier{Certificate: x.GetCertificate(), OrganizationalUnitIdentifier: x.GetOrganizationalUnitIdentifier()}
	}
	cfg := &ccpb.MSPConfig{
		Name:                 fc.GetName(),
		RootCerts:            fc.GetRootCerts(),
		IntermediateCerts:    fc.GetIntermediateCerts(),
		Admins:               fc.GetAdmins(),
		RevocationList:       fc.GetRevocationList(),
		TlsRootCerts:         fc.GetTlsRootCerts(),
		TlsIntermediateCerts: fc.GetTlsIntermediateCerts(),
	}
	for _, x := range fc.GetOrganizationalUnitIdentifiers() {
		cfg.OrganizationalUnitIdentifiers = append(cfg.OrganizationalUnitIdentifiers, ou(x))
	}
	if n := fc.GetFabricNodeOus(); n != nil {
		cfg.FabricNodeOus = &ccpb.FabricNodeOUs{
			Enable:              n.GetEnable(),
			ClientOuIdentifier:  ou(n.GetClientOuIdentifier()),
			PeerOuIdentifier:    ou(n.GetPeerOuIdentifier()),
			AdminOuIdentifier:   ou(n.GetAdminOuIdentifier()),
			OrdererOuIdentifier: ou(n.GetOrdererOuIdentifier()),
		}
	}
	return cfg
}

// FabricMSPConfig returns the FabricMSPConfig of an MSP configuration of
// package msp (as msp.LoadDir reads it from an MSP folder), with the crypto
// settings configtxgen writes (SHA2 signatures, SHA256 identity
// identifiers).
func FabricMSPConfig(cfg *ccpb.MSPConfig) *mspb.FabricMSPConfig {
	ou := func(x *ccpb.FabricOUIdentifier) *mspb.FabricOUIdentifier {
		if x == nil {
			return nil
		}
		return &mspb.FabricOUIdentifier{Certificate: x.GetCertificate(), OrganizationalUnitIdentifier: x.GetOrganizationalUnitIdentifier()}
	}
	fc := &mspb.FabricMSPConfig{
		Name:                 cfg.GetName(),
		RootCerts:            cfg.GetRootCerts(),
		IntermediateCerts:    cfg.GetIntermediateCerts(),
		Admins:               cfg.GetAdmins(),
		RevocationList:       cfg.GetRevocationList(),
		CryptoConfig:         &mspb.FabricCryptoConfig{SignatureHashFamily: "SHA2", IdentityIdentifierHashFunction: "SHA256"},
		TlsRootCerts:         cfg.GetTlsRootCerts(),
		TlsIntermediateCerts: cfg.GetTlsIntermediateCerts(),
	}
	for _, x := range cfg.GetOrganizationalUnitIdentifiers() {
		fc.OrganizationalUnitIdentifiers = append(fc.OrganizationalUnitIdentifiers, ou(x))
	}
	if n := cfg.GetFabricNodeOus(); n != nil {
		fc.FabricNodeOus = &mspb.FabricNodeOUs{
			Enable:              n.GetEnable(),
			ClientOuIdentifier:  ou(n.GetClientOuIdentifier()),
			PeerOuIdentifier:    ou(n.GetPeerOuIdentifier()),
			AdminOuIdentifier:   ou(n.GetAdminOuIdentifier()),
			OrdererOuIdentifier: ou(n.GetOrdererOuIdentifier()),
		}
	}
	return proto.Clone(fc).(*mspb.FabricMSPConfig)
}

// decodeValues decodes each value of group into the message known for its
// key. A key Fabric does not know for the group is an error, as in Fabric.
func decodeValues(group *cb.ConfigGroup, path string, known map[string]proto.Message) error {
	for _, key := range sortedKeys(group.GetValues()) {
		m, ok := known[key]
		if !ok {
			return fmt.Errorf("group %s: unexpected value key %s", path, key)
		}
		if err := proto.Unmarshal(group.GetValues()[key].GetValue(), m); err != nil {
			return fmt.Errorf("value %s/%s: %w", path, key, err)
		}
	}
	return nil
}

// supported checks that every capability of have is one of known.
func supported(kind string, have, known []string) error {
	for _, c := range have {
		if !slices.Contains(known, c) {
			return fmt.Errorf("%s capability %s is required but not supported", kind, c)
		}
	}
	return nil
}

// hasAny reports whether have holds one of want.
func hasAny(have, want []string) bool {
	for _, c := range have {
		if slices.Contains(want, c) {
			return true
		}
	}
	return false
}

// checkHostPort checks that s is host:port with a non-empty host and a
// port from 1 to 65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("empty host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
