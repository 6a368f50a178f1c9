package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/fabricconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	ccpb "github.com/kafkaconsensus/kafkaconsensus/protos/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// genesisConfig is what the genesis subcommand writes.
type genesisConfig struct {
	channel           string
	orgs              []orgDir
	ordererOrgs       []orgDir
	maxMessageCount   uint
	absoluteMaxBytes  uint
	preferredMaxBytes uint
	batchTimeout      time.Duration
	kafkaBrokers      []string
	ordererAddresses  []string
	format            string
	out               string
}

// The formats of the channel configuration the genesis command writes.
const (
	formatFabric = "fabric"         // Fabric's config tree (fabricconfig)
	formatOwn    = "kafkaconsensus" // this project's own message (channelconfig)
)

func runGenesis(ctx context.Context, args []string, out io.Writer) error {
	var c genesisConfig
	var orgs, ordererOrgs orgFlag
	var brokers, addresses commaList
	fs := newFlagSet("genesis", "--channel NAME --org MSPID=DIR... --orderer-org MSPID=DIR... -o FILE")
	fs.StringVar(&c.channel, "channel", "", "channel ID (also the Kafka topic)")
	fs.Var(&orgs, "org", "application organisation as `MSPID=DIR`, DIR a Fabric MSP folder (repeatable)")
	fs.Var(&ordererOrgs, "orderer-org", "orderer organisation as `MSPID=DIR` (repeatable)")
	fs.UintVar(&c.maxMessageCount, "max-message-count", 10, "envelopes at which a block is cut")
	fs.UintVar(&c.absoluteMaxBytes, "absolute-max-bytes", 10<<20, "largest envelope (payload and signature) accepted")
	fs.UintVar(&c.preferredMaxBytes, "preferred-max-bytes", 512<<10, "block size the block cutter aims for")
	fs.DurationVar(&c.batchTimeout, "batch-timeout", 2*time.Second, "time after the first envelope of a batch at which the block is cut")
	fs.Var(&brokers, "kafka-brokers", "Kafka brokers recorded in the configuration (comma separated or repeated; informative)")
	fs.Var(&addresses, "orderer-address", "`host:port` of an orderer, recorded in the configuration for peers to pull blocks from (comma separated or repeated; fabric format)")
	fs.StringVar(&c.format, "format", formatFabric, "configuration format: "+formatFabric+" (Fabric's config tree, which Fabric peers and tools read) or "+formatOwn)
	fs.StringVar(&c.out, "o", "genesis.block", "output `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.orgs, c.ordererOrgs, c.kafkaBrokers, c.ordererAddresses = orgs, ordererOrgs, brokers, addresses
	block, err := genesisBlock(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.out, protoutil.MarshalOrPanic(block), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote the genesis block of channel %s to %s (header hash %x)\n", c.channel, c.out, protoutil.HeaderHash(block.GetHeader()))
	return nil
}

// genesisBlock builds the genesis block of c: Fabric's default policies
// (Readers and Writers ANY member, Admins MAJORITY admin over all
// organisations).
func genesisBlock(c genesisConfig) (*cb.Block, error) {
	if c.channel == "" {
		return nil, errors.New("genesis: --channel is required")
	}
	if len(c.orgs)+len(c.ordererOrgs) == 0 {
		return nil, errors.New("genesis: at least one --org or --orderer-org is required")
	}
	if c.maxMessageCount > 1<<32-1 || c.absoluteMaxBytes > 1<<32-1 || c.preferredMaxBytes > 1<<32-1 {
		return nil, errors.New("genesis: batch limits must fit in 32 bits")
	}
	switch c.format {
	case formatFabric:
		return fabricGenesisBlock(c)
	case formatOwn, "":
		if len(c.ordererAddresses) > 0 {
			return nil, fmt.Errorf("genesis: --orderer-address needs --format %s", formatFabric)
		}
	default:
		return nil, fmt.Errorf("genesis: --format %q: want %s or %s", c.format, formatFabric, formatOwn)
	}
	cfg := &ccpb.ChannelConfig{
		ChannelId: c.channel,
		BatchSize: &ccpb.BatchSize{
			MaxMessageCount:   uint32(c.maxMessageCount),
			AbsoluteMaxBytes:  uint32(c.absoluteMaxBytes),
			PreferredMaxBytes: uint32(c.preferredMaxBytes),
		},
		BatchTimeout: durationpb.New(c.batchTimeout),
		Policies:     channelconfig.DefaultChannelPolicies(),
	}
	if len(c.kafkaBrokers) > 0 {
		cfg.Kafka = &ccpb.KafkaSettings{Brokers: c.kafkaBrokers}
	}
	load := func(list []orgDir) ([]*ccpb.Organization, error) {
		var out []*ccpb.Organization
		for _, o := range list {
			m, err := msp.LoadDir(o.dir, o.mspID)
			if err != nil {
				return nil, fmt.Errorf("genesis: %w", err)
			}
			out = append(out, channelconfig.NewOrganization(m))
		}
		return out, nil
	}
	var err error
	if cfg.ApplicationOrgs, err = load(c.orgs); err != nil {
		return nil, err
	}
	if cfg.OrdererOrgs, err = load(c.ordererOrgs); err != nil {
		return nil, err
	}
	block, err := channelconfig.GenesisBlock(cfg)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return block, nil
}

// fabricGenesisBlock builds the genesis block of c as Fabric's configtxgen
// would for a Kafka application channel: Fabric's config tree with its
// default policies (channel Readers and Writers ANY, Admins MAJORITY;
// organisations' Readers, Writers and Admins by NodeOU roles).
func fabricGenesisBlock(c genesisConfig) (*cb.Block, error) {
	load := func(list []orgDir) ([]fabricconfig.Org, error) {
		var out []fabricconfig.Org
		for _, o := range list {
			org, err := fabricconfig.OrgFromDir(o.dir, o.mspID)
			if err != nil {
				return nil, fmt.Errorf("genesis: %w", err)
			}
			out = append(out, org)
		}
		return out, nil
	}
	g := fabricconfig.Genesis{
		ChannelID: c.channel,
		BatchSize: channelconfig.BatchSize{
			MaxMessageCount:   uint32(c.maxMessageCount),
			AbsoluteMaxBytes:  uint32(c.absoluteMaxBytes),
			PreferredMaxBytes: uint32(c.preferredMaxBytes),
		},
		BatchTimeout:     c.batchTimeout,
		KafkaBrokers:     c.kafkaBrokers,
		OrdererAddresses: c.ordererAddresses,
	}
	var err error
	if g.ApplicationOrgs, err = load(c.orgs); err != nil {
		return nil, err
	}
	if g.OrdererOrgs, err = load(c.ordererOrgs); err != nil {
		return nil, err
	}
	block, err := fabricconfig.GenesisBlock(g)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return block, nil
}
