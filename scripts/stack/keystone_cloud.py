"""The stack's Keystone cloud, made idempotently (run again: nothing changes):

- the `service` project and Cinder's service user (admin there: it validates tokens);
- the catalog: a `volumev3` service whose endpoints are the keystone-checked cinder-api;
- the pool's own project and user, admin in it (Cinder's admin API: all tenants, quotas);
- tenant projects with a user each (member); the pool's user is a member of the tenant projects
  it serves (that is how it accepts a transfer there), not of `tenant-closed`.

Usage: keystone_cloud.py AUTH_URL ADMIN_PASSWORD CINDER_ENDPOINT PASSWORD
(one password for every user of this throwaway loopback cloud but admin).
Prints the ids as JSON.
"""
import json
import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

auth_url, admin_password, cinder_endpoint, password = sys.argv[1:5]
ks = client.Client(session=session.Session(auth=v3.Password(
    auth_url=auth_url, username='admin', password=admin_password, project_name='admin',
    user_domain_id='default', project_domain_id='default')))


def one(items, name):
    found = [i for i in items if i.name == name]
    return found[0] if found else None


def project(name):
    return one(ks.projects.list(domain='default'), name) or ks.projects.create(name, 'default')


def user(name, default_project):
    u = one(ks.users.list(domain='default'), name)
    if u:
        ks.users.update(u, password=password)  # the stack's password wins
        return u
    return ks.users.create(name, domain='default', password=password,
                           default_project=default_project)


def role(name):
    return one(ks.roles.list(), name) or ks.roles.create(name)


def grant(r, u, p):
    ks.roles.grant(r, user=u, project=p)


admin, member, reader = role('admin'), role('member'), role('reader')
service = project('service')
cinder = user('cinder', service)
grant(admin, cinder, service)

volumev3 = one(ks.services.list(type='volumev3'), 'cinderv3') or ks.services.create(
    'cinderv3', 'volumev3', description='Cinder (keystone-checked API of the stack)')
for interface in ('public', 'internal', 'admin'):
    have = [e for e in ks.endpoints.list(service=volumev3, interface=interface)]
    url = cinder_endpoint + '/%(project_id)s'
    if have:
        if have[0].url != url:
            ks.endpoints.update(have[0], url=url)
    else:
        ks.endpoints.create(volumev3, url, interface=interface, region='RegionOne')

pool_project = project('warmpool')
pool_user = user('warmpool', pool_project)
grant(admin, pool_user, pool_project)

tenants = {}
for name, served in (('tenant-alpha', True), ('tenant-beta', True), ('tenant-closed', False)):
    p = project(name)
    u = user(name + '-user', p)
    grant(member, u, p)
    grant(reader, u, p)
    if served:
        grant(member, pool_user, p)
    tenants[name] = {'projectId': p.id, 'userId': u.id, 'user': u.name}

print(json.dumps({
    'poolProjectId': pool_project.id, 'poolUserId': pool_user.id,
    'serviceProjectId': service.id, 'tenants': tenants,
}))
