"""Nova's side of the stack's Keystone cloud, made idempotently (run again: nothing changes).

  nova_cloud.py catalog AUTH_URL ADMIN_PASSWORD PASSWORD COMPUTE_URL PLACEMENT_URL
      service users `nova` and `placement`, admin and `service` in project `service` (they
      validate tokens; Nova calls Placement and Cinder as `nova`, with a service token that
      Cinder requires for deleting an attachment in use); catalog entries `compute` and
      `placement` (endpoints public, internal, admin).
  nova_cloud.py cloud AUTH_URL ADMIN_PASSWORD TENANT_PROJECT_IDS ZONE=HOST...
      through nova-api, once the compute services are mapped to the cell: an aggregate per
      zone holding its compute host, the flavor m1.pool, and the tenants' compute quotas.
Prints what it made as JSON.
"""
import json
import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client as keystone_client

FLAVOR = {'name': 'm1.pool', 'vcpus': 1, 'ram': 512, 'disk': 0}
TENANT_QUOTA = {'instances': 100, 'cores': 100, 'ram': 100 * 512}


def admin_session(auth_url, admin_password):
    return session.Session(auth=v3.Password(
        auth_url=auth_url, username='admin', password=admin_password, project_name='admin',
        user_domain_id='default', project_domain_id='default'))


def one(items, name):
    found = [i for i in items if i.name == name]
    return found[0] if found else None


def catalog(sess, password, compute_url, placement_url):
    ks = keystone_client.Client(session=sess)
    service = one(ks.projects.list(domain='default'), 'service')
    if service is None:
        raise SystemExit('no project `service` in Keystone: keystone_cloud.py makes it first')
    admin = one(ks.roles.list(), 'admin')
    # Cinder accepts Nova's service token (attachment deletes) from a user with this role.
    service_role = one(ks.roles.list(), 'service') or ks.roles.create('service')
    for name in ('nova', 'placement'):
        u = one(ks.users.list(domain='default'), name)
        if u:
            ks.users.update(u, password=password)  # the stack's password wins
        else:
            u = ks.users.create(name, domain='default', password=password,
                                default_project=service)
        ks.roles.grant(admin, user=u, project=service)
        ks.roles.grant(service_role, user=u, project=service)
    for name, kind, url in (('nova', 'compute', compute_url),
                            ('placement', 'placement', placement_url)):
        svc = one(ks.services.list(type=kind), name) or ks.services.create(name, kind)
        for interface in ('public', 'internal', 'admin'):
            have = list(ks.endpoints.list(service=svc, interface=interface))
            if not have:
                ks.endpoints.create(svc, url, interface=interface, region='RegionOne')
            elif have[0].url != url:
                ks.endpoints.update(have[0], url=url)
    return {'serviceProjectId': service.id}


def cloud(sess, tenant_ids, zones):
    from novaclient import client as nova_client
    nova = nova_client.Client('2.37', session=sess)
    aggregates = {}
    for zone, host in zones:
        agg = one(nova.aggregates.list(), zone) or nova.aggregates.create(zone, zone)
        if host not in agg.hosts:
            agg = nova.aggregates.add_host(agg, host)
        aggregates[zone] = {'id': agg.id, 'hosts': agg.hosts}
    flavor = one(nova.flavors.list(is_public=None), FLAVOR['name']) or nova.flavors.create(
        FLAVOR['name'], FLAVOR['ram'], FLAVOR['vcpus'], FLAVOR['disk'])
    for project_id in tenant_ids:
        nova.quotas.update(project_id, **TENANT_QUOTA)
    return {'aggregates': aggregates, 'flavorId': flavor.id, 'flavor': FLAVOR,
            'tenantQuota': TENANT_QUOTA}


def main(argv):
    command, auth_url, admin_password = argv[1:4]
    sess = admin_session(auth_url, admin_password)
    if command == 'catalog':
        password, compute_url, placement_url = argv[4:7]
        result = catalog(sess, password, compute_url, placement_url)
    elif command == 'cloud':
        tenant_ids = [t for t in argv[4].split(',') if t]
        zones = [z.split('=', 1) for z in argv[5:]]
        result = cloud(sess, tenant_ids, zones)
    else:
        raise SystemExit('usage: nova_cloud.py catalog|cloud ... (see the docstring)')
    print(json.dumps(result))


if __name__ == '__main__':
    main(sys.argv)
