module example.com/omnigate-crm-consumer

go 1.19

// The version the tests build against (Debian 12's golang-github-nats-io-go-nats-dev); newer
// nats.go releases keep this JetStream API. `go mod tidy` adds the go.sum entries.
require github.com/nats-io/nats.go v1.22.1
