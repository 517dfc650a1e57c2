#!/bin/sh
# Regenerates the test PEMs (run in this directory; needs the openssl CLI). Valid 100 years.
# ca: signs server.crt (SANs 127.0.0.1, localhost) and client.crt; other-ca: signs nothing,
# the "wrong CA" of the tests.
set -e
days=36500
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days $days -subj /CN=vigil-test-ca
openssl req -x509 $ec -keyout other-ca.key -out other-ca.crt -days $days -subj /CN=vigil-other-ca
rm other-ca.key
openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days $days -extfile server.ext -out server.crt
openssl req $ec -keyout client.key -out client.csr -subj /CN=vigil-agent
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days $days -extfile client.ext -out client.crt
rm -f ca.key ca.srl server.csr server.ext client.csr client.ext
