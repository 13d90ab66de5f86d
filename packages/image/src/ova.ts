/**
 * OVA packaging for VMware and VirtualBox: an OVF descriptor describing one streamOptimized
 * vmdk, and the ustar archive holding the descriptor first, then the disk (OVF 1.x requires
 * that order).
 */
import { stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { OnProgress } from '@cosa/schema';
import { run } from '@cosa/ostree/internal';

/** The parameters of an OVF descriptor. */
export interface OvfParams {
  /** Which hypervisor the descriptor targets. */
  flavor: 'vmware' | 'virtualbox';
  /** Name of the virtual machine / image. */
  name: string;
  /** Product name, vendor and version shown by the importer. */
  product: string;
  vendor: string;
  version: string;
  /** The vmdk's file name inside the OVA. */
  diskFile: string;
  /** Size of the vmdk file, bytes. */
  diskFileSize: number;
  /** Virtual size of the disk, bytes. */
  diskCapacity: number;
  /** `vmx-<N>` virtual hardware version (image.yaml `vmware-hw-version`). */
  hwVersion: number;
  /** VMware guest OS type (image.yaml `vmware-os-type`), e.g. `rhel7_64Guest`. */
  osType: string;
  /** UEFI Secure Boot on (image.yaml `vmware-secure-boot`). */
  secureBoot: boolean;
  /** vCPUs and memory (MiB) of the VM (default 2 and 4096). */
  cpus?: number;
  memoryMiB?: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Renders the OVF 1.0 descriptor for one disk. */
export function renderOvf(p: OvfParams): string {
  const cpus = p.cpus ?? 2;
  const mem = p.memoryMiB ?? 4096;
  const vmw = p.flavor === 'vmware';
  const systemType = vmw ? `vmx-${p.hwVersion}` : 'virtualbox-2.2';
  // VirtualBox imports the disk on a SATA (AHCI) controller; VMware on LSI Logic SCSI.
  const controller = vmw
    ? ['        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>', '        <rasd:ResourceType>6</rasd:ResourceType>']
    : ['        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>', '        <rasd:ResourceType>20</rasd:ResourceType>'];
  const nic = vmw ? 'VmxNet3' : 'E1000';
  const vmwConfig = vmw
    ? [
        `      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>`,
        `      <vmw:Config ovf:required="false" vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="${p.secureBoot ? 'true' : 'false'}"/>`,
      ]
    : [];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"' +
      ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"' +
      ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"' +
      ' xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    '  <References>',
    `    <File ovf:href="${esc(p.diskFile)}" ovf:id="file1" ovf:size="${p.diskFileSize}"/>`,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Virtual disk information</Info>',
    `    <Disk ovf:capacity="${p.diskCapacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1"` +
      ` ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="${p.diskFileSize}"/>`,
    '  </DiskSection>',
    '  <NetworkSection>',
    '    <Info>The list of logical networks</Info>',
    '    <Network ovf:name="VM Network"><Description>The VM Network network</Description></Network>',
    '  </NetworkSection>',
    '  <VirtualSystem ovf:id="image">',
    '    <Info>A virtual machine</Info>',
    `    <Name>${esc(p.name)}</Name>`,
    `    <OperatingSystemSection ovf:id="80"${vmw ? ` vmw:osType="${esc(p.osType)}"` : ''}>`,
    '      <Info>The kind of installed guest operating system</Info>',
    '    </OperatingSystemSection>',
    '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    '      <System>',
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    '        <vssd:VirtualSystemIdentifier>image</vssd:VirtualSystemIdentifier>',
    `        <vssd:VirtualSystemType>${systemType}</vssd:VirtualSystemType>`,
    '      </System>',
    '      <Item>',
    '        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>',
    '        <rasd:Description>Number of Virtual CPUs</rasd:Description>',
    `        <rasd:ElementName>${cpus} virtual CPU(s)</rasd:ElementName>`,
    '        <rasd:InstanceID>1</rasd:InstanceID>',
    '        <rasd:ResourceType>3</rasd:ResourceType>',
    `        <rasd:VirtualQuantity>${cpus}</rasd:VirtualQuantity>`,
    '      </Item>',
    '      <Item>',
    '        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>',
    '        <rasd:Description>Memory Size</rasd:Description>',
    `        <rasd:ElementName>${mem} MB of memory</rasd:ElementName>`,
    '        <rasd:InstanceID>2</rasd:InstanceID>',
    '        <rasd:ResourceType>4</rasd:ResourceType>',
    `        <rasd:VirtualQuantity>${mem}</rasd:VirtualQuantity>`,
    '      </Item>',
    '      <Item>',
    '        <rasd:Address>0</rasd:Address>',
    '        <rasd:Description>Disk Controller</rasd:Description>',
    '        <rasd:ElementName>Controller 0</rasd:ElementName>',
    '        <rasd:InstanceID>3</rasd:InstanceID>',
    ...controller,
    '      </Item>',
    '      <Item>',
    '        <rasd:AddressOnParent>0</rasd:AddressOnParent>',
    '        <rasd:ElementName>Hard disk 0</rasd:ElementName>',
    '        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>',
    '        <rasd:InstanceID>4</rasd:InstanceID>',
    '        <rasd:Parent>3</rasd:Parent>',
    '        <rasd:ResourceType>17</rasd:ResourceType>',
    '      </Item>',
    '      <Item>',
    '        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>',
    '        <rasd:Connection>VM Network</rasd:Connection>',
    '        <rasd:ElementName>Network adapter 1</rasd:ElementName>',
    '        <rasd:InstanceID>5</rasd:InstanceID>',
    `        <rasd:ResourceSubType>${nic}</rasd:ResourceSubType>`,
    '        <rasd:ResourceType>10</rasd:ResourceType>',
    '      </Item>',
    ...vmwConfig,
    '    </VirtualHardwareSection>',
    '    <ProductSection>',
    '      <Info>Information about the installed software</Info>',
    `      <Product>${esc(p.product)}</Product>`,
    `      <Vendor>${esc(p.vendor)}</Vendor>`,
    `      <Version>${esc(p.version)}</Version>`,
    '      <Property ovf:userConfigurable="true" ovf:type="string" ovf:key="guestinfo.ignition.config.data" ovf:value="">',
    '        <Label>Ignition config data</Label>',
    '      </Property>',
    '      <Property ovf:userConfigurable="true" ovf:type="string" ovf:key="guestinfo.ignition.config.data.encoding" ovf:value="">',
    '        <Label>Ignition config data encoding</Label>',
    '      </Property>',
    '    </ProductSection>',
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}

/** Options of {@link writeOva}. */
export interface WriteOvaOptions extends Omit<OvfParams, 'diskFile' | 'diskFileSize'> {
  /** The streamOptimized vmdk (its directory also receives the descriptor). */
  vmdk: string;
  /** The .ova to write. */
  output: string;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** Writes the OVF descriptor next to `vmdk` and tars both (descriptor first, ustar) into `output`. */
export async function writeOva(options: WriteOvaOptions): Promise<{ descriptor: string }> {
  const { vmdk, output, signal, onProgress, ...params } = options;
  const dir = dirname(vmdk);
  const diskFile = basename(vmdk);
  const ovfName = `${params.name.replace(/[^A-Za-z0-9._-]/g, '_')}.ovf`;
  const descriptor = renderOvf({ ...params, diskFile, diskFileSize: (await stat(vmdk)).size });
  await writeFile(join(dir, ovfName), descriptor);
  await run(['tar', '--owner=0', '--group=0', '--numeric-owner', '--format=ustar', '-cf', output, '-C', dir, ovfName, diskFile], {
    signal,
    onProgress,
    streamLines: false,
  });
  return { descriptor };
}
