// Package atomicbroadcast serves Hyperledger Fabric's orderer.AtomicBroadcast
// gRPC service (Broadcast and Deliver) over the chains of package
// consensus, with Fabric's statuses and seek rules, and pulls blocks from
// other orderers through the same service (PeerSource). It is what Fabric
// keeps in orderer/common/broadcast and common/deliver.
//
// # Usage
//
//	channels := map[string]atomicbroadcast.Channel{
//		"mychannel": {Chain: chain, Ledger: chain.Ledger()}, // a *consensus.Chain
//	}
//	srv, err := atomicbroadcast.NewServer(channels, atomicbroadcast.WithLogger(logger))
//	gopts, err := atomicbroadcast.ServerOptions(atomicbroadcast.GRPCLimits{
//		MaxRecvMsgSize: atomicbroadcast.MaxRecvMsgSize(channels)})
//	creds := credentials.NewTLS(atomicbroadcast.MutualTLS(serverTLS, channels)) // optional
//	gs := grpc.NewServer(append(gopts, grpc.Creds(creds))...)
//	ab.RegisterAtomicBroadcastServer(gs, srv)
//	err = gs.Serve(atomicbroadcast.LimitListener(listener, atomicbroadcast.DefaultMaxConnections))
//
// A client dials with DialOptions (Fabric's message sizes, and keepalive
// that closes a connection stalled by a network partition), sends one
// envelope with BroadcastOne and reads blocks with ReadBlocks and a
// NewSeekEnvelope request:
//
//	conn, err := grpc.NewClient(addr, atomicbroadcast.DialOptions(creds, atomicbroadcast.DefaultClientStallTimeout)...)
//	client := ab.NewAtomicBroadcastClient(conn)
//	resp, err := atomicbroadcast.BroadcastOne(ctx, client, env)
//	seek, err := atomicbroadcast.NewSeekEnvelope(signer, "mychannel", seekInfo)
//	status, err := atomicbroadcast.ReadBlocks(ctx, client, seek, func(b *cb.Block) error { ... })
//
// A node that should catch up from the others when Kafka no longer holds
// the records it needs gives the consenter a PeerSource per other node:
//
//	src, err := atomicbroadcast.NewPeerSource("10.0.0.2:7050", creds, nodeIdentity)
//	cons, err := consensus.NewConsenter(..., consensus.WithBlockSources(src))
//
// # Broadcast
//
// Each envelope of a stream is answered with one BroadcastResponse, in the
// order of the stream. A stream is a pipeline: the server keeps reading,
// validating and producing envelopes while earlier ones await Kafka's
// acknowledgement, and answers each once it is acknowledged or refused.
// Valid envelopes reach the chain in stream order, so that they keep it in
// the log. At most GOMAXPROCS validations run at once per server; the
// chain bounds what it has handed to Kafka (consensus.WithMaxInFlight).
//
// The channel header's type says how an envelope is processed, as
// Fabric's orderer classifies it on an application channel, but stricter:
// MESSAGE, ENDORSER_TRANSACTION and CHAINCODE_PACKAGE are normal
// (Chain.ProcessNormal, OrderAsync); CONFIG_UPDATE goes to
// Chain.ProcessConfigUpdate, and the CONFIG envelope it returns is
// ordered (ConfigureAsync); CONFIG is taken (ProcessConfig) on a channel
// of this project's format, whose administrators sign CONFIG envelopes,
// and refused on a channel that takes CONFIG_UPDATE, as Fabric refuses it;
// ORDERER_TRANSACTION, DELIVER_SEEK_INFO and types outside the enumeration
// are refused (ErrMessageType, BAD_REQUEST).
//
// # What bounds what
//
// A hostile client must not make the server hold memory it chooses. Each
// stage has its bound:
//
//   - Before a message is read, gRPC holds what a client sent on a stream
//     up to the stream's flow-control window (GRPCLimits.InitialWindowSize,
//     64 KiB, fixed: gRPC's dynamic windows would grow to 16 MiB), for at
//     most MaxConcurrentStreams streams per connection (256), on at most
//     the connections of LimitListener (1024); the Server refuses streams
//     beyond WithMaxStreams (1024 Broadcast, 1024 Deliver) at once, and
//     headers are bounded (MaxHeaderListSize, 64 KiB).
//   - A message being read is held whole before Recv returns, up to
//     GRPCLimits.MaxRecvMsgSize: MaxRecvMsgSize of the channels, their
//     largest AbsoluteMaxBytes plus consensus.RecordOverhead. gRPC refuses
//     a larger one from its length, before reading it.
//   - A Broadcast envelope read counts against its stream's budget
//     (WithStreamBudget, 4 MiB) and the server's (WithBudget, 64 MiB) from
//     its reading until its answer is sent; the window (WithWindow, 1000)
//     bounds their number. A stream is read only while both budgets have
//     room: a client that sends faster than Kafka acknowledges, or that
//     does not read its answers, stops being read, and its envelopes wait
//     in its own flow-control window. Each stream may exceed the budgets
//     by the one envelope it was reading.
//   - A Broadcast stream that receives no envelope and sends no answer for
//     WithIdleTimeout (2 minutes) is closed; keepalive enforcement closes
//     connections that ping too often, are silent, or stay without streams
//     (GRPCLimits).
//
// At worst, then, the server holds for its clients the Broadcast budget,
// one message being read per stream served (Broadcast and Deliver) and a
// window per open stream: WithBudget + (Broadcast + Deliver streams) ×
// MaxRecvMsgSize + open streams × InitialWindowSize. A deployment sizes the
// stream and connection limits from the memory it can give: with the
// defaults and 10 MiB messages, four connections that never read their
// answers make it hold about 100 MiB of envelopes; a thousand streams that
// each send a largest message at the same moment could make it hold 10
// GiB, which lower stream limits, or a smaller AbsoluteMaxBytes, prevent.
//
// Mutual TLS (MutualTLS: the channels' organisations' TLS CAs, read again
// when a configuration changes) keeps unknown clients out at the
// handshake; WithTLSBinding makes requests prove they come from the holder
// of the connection's certificate (Fabric's tls_cert_hash); WithThrottle
// bounds the envelopes per second of each client identity and
// organisation.
//
// # Deliver
//
// The seek requests of a stream are served one after the other: the blocks
// asked for, then a status. Seek rules are Fabric's: oldest is block 0,
// newest the last block, next_commit the block to be written next; a stop
// at oldest stops at the start; a stop before the start is BAD_REQUEST.
// BLOCK_UNTIL_READY waits for blocks not yet written; FAIL_IF_NOT_READY
// answers NOT_FOUND at the first block beyond the ledger. The request must
// satisfy the channel's Readers policy, through the channel
// configuration's DeliverAuthorizer; a configuration without it refuses
// every reader. The reader is authorised again each time the channel's
// configuration sequence changes while blocks are served, as in Fabric.
// SeekInfo.error_response STRICT (the default) answers SERVICE_UNAVAILABLE
// while the chain is errored (cannot consume from Kafka) or halted, also in
// the middle of a request; BEST_EFFORT keeps serving the blocks written.
//
// # Statuses
//
// StatusOf maps errors to statuses (errors.Is, in this order):
//
//	error                                                  status                    Fabric 1.4
//	request that does not decode, bad SeekInfo             BAD_REQUEST               BAD_REQUEST
//	ErrChannelNotFound                                     NOT_FOUND                 NOT_FOUND
//	ErrMessageType, consensus.ErrNoConfigUpdates           BAD_REQUEST               BAD_REQUEST
//	ErrTLSBinding                                          BAD_REQUEST               BAD_REQUEST (Deliver)
//	ErrThrottled                                           SERVICE_UNAVAILABLE       (waits, Fabric 3.0)
//	consensus.ErrTooLarge                                  REQUEST_ENTITY_TOO_LARGE  BAD_REQUEST
//	fabricconfig.ErrBadUpdate                              BAD_REQUEST               BAD_REQUEST
//	channelconfig.ErrForbidden, ErrBadSignature            FORBIDDEN                 FORBIDDEN
//	channelconfig.ErrMalformed, ErrWrongChannel,
//	ErrBadSequence                                         BAD_REQUEST               BAD_REQUEST
//	consensus.ErrNotReady, ErrHalted, ctx canceled/expired SERVICE_UNAVAILABLE       SERVICE_UNAVAILABLE (WaitReady)
//	consensus.ErrNotAcknowledged, ErrStaleConfig           INTERNAL_SERVER_ERROR     INTERNAL_SERVER_ERROR (Order)
//	any other error                                        BAD_REQUEST               BAD_REQUEST
//
// Streams beyond WithMaxStreams end with gRPC's RESOURCE_EXHAUSTED, idle
// Broadcast streams with UNAVAILABLE, and messages over the receive limit
// with RESOURCE_EXHAUSTED from gRPC. Deliver also answers SERVICE_UNAVAILABLE for a STRICT request while the
// chain is errored or halted, or when the ledger is closed; NOT_FOUND for a
// FAIL_IF_NOT_READY request beyond the ledger; INTERNAL_SERVER_ERROR when
// the ledger cannot be read; and SUCCESS after the last block asked for.
// Broadcast's answers carry the error in Info; Deliver's statuses carry no
// text, and the server logs why it refused (WithLogger).
package atomicbroadcast
