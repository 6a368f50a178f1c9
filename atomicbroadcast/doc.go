// Package atomicbroadcast serves Hyperledger Fabric's orderer.AtomicBroadcast
// gRPC service (Broadcast and Deliver) over the chains of package
// consensus, with Fabric's statuses and seek rules, and pulls blocks from
// other orderers through the same service (PeerSource). It is what Fabric
// keeps in orderer/common/broadcast and common/deliver.
//
// # Usage
//
//	srv, err := atomicbroadcast.NewServer(map[string]atomicbroadcast.Channel{
//		"mychannel": {Chain: chain, Ledger: chain.Ledger()}, // a *consensus.Chain
//	}, atomicbroadcast.WithLogger(logger))
//	gs := grpc.NewServer(grpc.MaxRecvMsgSize(atomicbroadcast.MaxMessageBytes),
//		grpc.MaxSendMsgSize(atomicbroadcast.MaxMessageBytes))
//	ab.RegisterAtomicBroadcastServer(gs, srv)
//	err = gs.Serve(listener)
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
// validating (Chain.ProcessNormal or ProcessConfig, by header type) and
// producing envelopes (Chain.OrderAsync or ConfigureAsync) while earlier
// ones await Kafka's acknowledgement, and answers each once it is
// acknowledged or refused. Valid envelopes reach the chain in stream order,
// so that they keep it in the log. Bounds: at most the window's envelopes
// (WithWindow, DefaultWindow) are between reading and answering per stream,
// after which the server stops reading that stream; at most GOMAXPROCS
// validations run at once per server; the chain bounds what it has handed
// to Kafka (consensus.WithMaxInFlight).
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
//	consensus.ErrTooLarge                                  REQUEST_ENTITY_TOO_LARGE  BAD_REQUEST
//	fabricconfig.ErrBadUpdate                              BAD_REQUEST               BAD_REQUEST
//	channelconfig.ErrForbidden, ErrBadSignature            FORBIDDEN                 FORBIDDEN
//	channelconfig.ErrMalformed, ErrWrongChannel,
//	ErrBadSequence                                         BAD_REQUEST               BAD_REQUEST
//	consensus.ErrNotReady, ErrHalted, ctx canceled/expired SERVICE_UNAVAILABLE       SERVICE_UNAVAILABLE (WaitReady)
//	consensus.ErrNotAcknowledged, ErrStaleConfig           INTERNAL_SERVER_ERROR     INTERNAL_SERVER_ERROR (Order)
//	any other error                                        BAD_REQUEST               BAD_REQUEST
//
// Deliver also answers SERVICE_UNAVAILABLE for a STRICT request while the
// chain is errored or halted, or when the ledger is closed; NOT_FOUND for a
// FAIL_IF_NOT_READY request beyond the ledger; INTERNAL_SERVER_ERROR when
// the ledger cannot be read; and SUCCESS after the last block asked for.
// Broadcast's answers carry the error in Info; Deliver's statuses carry no
// text, and the server logs why it refused (WithLogger).
package atomicbroadcast
