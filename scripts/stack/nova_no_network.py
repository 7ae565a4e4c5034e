"""An empty network service where Neutron would be: the stack has no Neutron.

Servers are created with `networks: none`, so Nova allocates no port. Nova still asks Neutron
about ports when it shows a server (security groups), refreshes its network cache and deletes a
server (ports to release); without an answer a delete ends in ERROR. This answers every read
with an empty list and refuses every write, so a request that needs a real network fails loudly.
Usage: nova_no_network.py HOST PORT   (Nova's [neutron] endpoint_override points here)
"""
import json
import re
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    path = environ.get('PATH_INFO', '')
    match = re.fullmatch(r'/v2\.0/([a-z-]+)(?:\.json)?', path)
    if environ['REQUEST_METHOD'] == 'GET' and match:
        status, body = '200 OK', {match.group(1).replace('-', '_'): []}
    elif environ['REQUEST_METHOD'] == 'GET' and path in ('', '/'):
        status, body = '200 OK', {'versions': [{'id': 'v2.0', 'status': 'CURRENT'}]}
    else:
        status = '501 Not Implemented'
        body = {'NeutronError': {'type': 'NoNetworkService', 'detail': '',
                                 'message': 'this stack has no Neutron: %s %s'
                                 % (environ['REQUEST_METHOD'], path)}}
    data = json.dumps(body).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        pass


if __name__ == '__main__':
    make_server(sys.argv[1], int(sys.argv[2]), app, handler_class=QuietHandler).serve_forever()
