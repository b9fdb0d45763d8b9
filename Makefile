# Build tags for the podman v5 bindings without cgo.
TAGS := remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
export CGO_ENABLED := 0
GO ?= go
BIN := bin/nfslab

.PHONY: all build install setup test test-unit lab vet clean

all: build

build:
	$(GO) build -tags '$(TAGS)' -o $(BIN) ./cmd/nfslab

install:
	$(GO) install -tags '$(TAGS)' ./cmd/nfslab

# setup installs what the lab and the tests need on a fresh Debian machine.
setup:
	./scripts/setup

vet:
	$(GO) vet -tags '$(TAGS)' ./...

# test runs every test. Privileged tests create their own namespaces; under
# CI=true a privileged test that would skip fails instead.
test:
	./scripts/test

# test-unit runs only what needs no root and no kernel features.
test-unit:
	$(GO) test -tags '$(TAGS)' -short ./...

lab:
	./scripts/lab

clean:
	rm -rf bin
