// Package zeebetest runs an in-process Zeebe gateway for tests, built on the
// official client's pb.GatewayServer and served over real gRPC on loopback.
// It implements what nfslab's load uses (DeployResource,
// CreateProcessInstance, ActivateJobs, CompleteJob, Topology) with keys
// encoded like Zeebe's (partition in the top bits), round-robin partitions,
// and injectable rejections: the next N calls of a method fail with a gRPC
// code, or creations on some partitions fail with NOT_FOUND as in seed 001
// (a deployment not yet distributed).
package zeebetest
