import { describe, expect, it } from 'vitest';
import { qemuArgs } from '../src/index.js';

describe('qemuArgs for a guest driven over its console (cosa kola)', () => {
  it('puts the serial console on a unix socket qemu waits on, logged to a file, and exports 9p shares', () => {
    const a = qemuArgs({ image: '/i.qcow2', accel: 'tcg', snapshot: false, serial: { socket: '/d/console.sock', log: '/d/console.txt' }, shares: [{ tag: 'kola', path: '/d/share' }], network: 'user' });
    expect(a.join(' ')).toContain('-chardev socket,id=con0,path=/d/console.sock,server=on,wait=on,logfile=/d/console.txt,logappend=on -serial chardev:con0 -monitor none');
    expect(a.join(' ')).toContain('-virtfs local,path=/d/share,mount_tag=kola,security_model=none,id=kola');
    expect(a).toContain('file=/i.qcow2,if=virtio');
    expect(a.join(' ')).toContain('-nic user,model=virtio-net-pci');
  });
});
