// Package zeebe is nfslab's own narrow view of a Zeebe gateway: deploy a
// resource, create a process instance, activate and complete jobs, read the
// topology. The load generator (package load) depends only on the Client
// interface here.
//
// The one implementation, Dial, sits over github.com/camunda/zeebe/clients/go/v8
// (pkg/zbc). That client is deprecated upstream (v8.5.25 is the newest the
// module proxy serves), so it is confined to zbc.go: replacing it with the
// REST API or raw gRPC stubs touches that file only.
//
// Package zeebetest provides an in-process gateway built on the client's
// pb.GatewayServer, with injectable rejections, for tests. Package cluster
// runs the brokers themselves in podman.
package zeebe
