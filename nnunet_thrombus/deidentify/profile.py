"""What de-identification keeps, replaces and records: PS3.15 Table E.1-1 actions, the allow-list of a minimal
source header, the identity replacements, the profile codes. Data only."""
from __future__ import annotations

#: PS3.15 Table E.1-1 (Basic Profile) action codes for the attributes a CT image or its request/visit data can
#: carry: X remove, Z empty (Type 2), D dummy value, U replace UID, and the combined codes the table gives.
#: The allow-list below does not *need* this table (absent by construction); it is used to list the identifying
#: values of a source (``identifying_values``), to plant them in tests and for the documentation.
BASIC_PROFILE = {
    "AccessionNumber": "Z", "AcquisitionComments": "X", "AcquisitionContextSequence": "X",
    "AcquisitionDate": "X/Z", "AcquisitionDateTime": "X/Z/D", "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionProtocolDescription": "X", "AcquisitionTime": "X/Z", "AcquisitionUID": "U",
    "ActualHumanPerformersSequence": "X", "AdditionalPatientHistory": "X", "AdmissionID": "X",
    "AdmittingDate": "X", "AdmittingDiagnosesCodeSequence": "X", "AdmittingDiagnosesDescription": "X",
    "AdmittingTime": "X", "Allergies": "X", "AuthorObserverSequence": "X", "BranchOfService": "X",
    "ConcatenationUID": "U", "ContentCreatorName": "Z", "ContentDate": "Z/D", "ContentTime": "Z/D",
    "ContrastBolusAgent": "Z/D", "ContributionDescription": "X", "CountryOfResidence": "X",
    "CurrentPatientLocation": "X", "CustodialOrganizationSequence": "X", "DataSetTrailingPadding": "X",
    "DerivationDescription": "X", "DetectorID": "X/D", "DeviceDescription": "X", "DeviceSerialNumber": "X/Z/D",
    "DeviceUID": "U", "DigitalSignaturesSequence": "X", "DimensionOrganizationUID": "U",
    "DischargeDiagnosisDescription": "X", "EthnicGroup": "X", "FillerOrderNumberImagingServiceRequest": "Z",
    "FrameAcquisitionDateTime": "X/D", "FrameComments": "X", "FrameOfReferenceUID": "U",
    "FrameReferenceDateTime": "X/D", "GantryID": "X/Z/D", "GeneratorID": "X/Z/D", "IconImageSequence": "X",
    "IdentifyingComments": "X", "ImageComments": "X", "ImagingServiceRequestComments": "X",
    "InstanceCreationDate": "X/D", "InstanceCreationTime": "X/Z/D", "InstanceCreatorUID": "U",
    "InstitutionAddress": "X", "InstitutionCodeSequence": "X/Z/D", "InstitutionName": "X/Z/D",
    "InstitutionalDepartmentName": "X", "InstitutionalDepartmentTypeCodeSequence": "X",
    "IrradiationEventUID": "U", "IssuerOfAdmissionIDSequence": "X", "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeIDSequence": "X", "LastMenstrualDate": "X", "MediaStorageSOPInstanceUID": "U",
    "MedicalAlerts": "X", "MedicalRecordLocator": "X", "MilitaryRank": "X", "ModifiedAttributesSequence": "X",
    "NameOfPhysiciansReadingStudy": "X", "Occupation": "X", "OperatorIdentificationSequence": "X",
    "OperatorsName": "X/Z/D", "OriginalAttributesSequence": "X", "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X", "PatientAddress": "X", "PatientAge": "X", "PatientBirthDate": "Z",
    "PatientBirthName": "X", "PatientBirthTime": "X", "PatientComments": "X", "PatientID": "Z",
    "PatientInstitutionResidence": "X", "PatientInsurancePlanCodeSequence": "X", "PatientMotherBirthName": "X",
    "PatientName": "Z", "PatientPrimaryLanguageCodeSequence": "X", "PatientReligiousPreference": "X",
    "PatientSex": "Z", "PatientSexNeutered": "X/Z", "PatientSize": "X", "PatientState": "X",
    "PatientTelephoneNumbers": "X", "PatientTransportArrangements": "X", "PatientWeight": "X",
    "PerformedLocation": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X", "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedStationAETitle": "X", "PerformedStationName": "X",
    "PerformingPhysicianIdentificationSequence": "X", "PerformingPhysicianName": "X",
    "PhysiciansOfRecord": "X", "PhysiciansOfRecordIdentificationSequence": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "PlacerOrderNumberImagingServiceRequest": "Z",
    "PreMedication": "X", "PregnancyStatus": "X", "ProtocolName": "X/D", "ReasonForStudy": "X",
    "ReasonForTheRequestedProcedure": "X", "ReasonForVisit": "X", "ReasonForVisitCodeSequence": "X",
    "ReferencedFrameOfReferenceUID": "U", "ReferencedImageSequence": "X/Z/U*", "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D", "ReferencedSOPInstanceUID": "U",
    "ReferencedStudySequence": "X/Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X", "RegionOfResidence": "X", "RelatedFrameOfReferenceUID": "U",
    "RequestAttributesSequence": "X", "RequestedContrastAgent": "X", "RequestedProcedureComments": "X",
    "RequestedProcedureDescription": "X/Z", "RequestedProcedureID": "X", "RequestedProcedureLocation": "X",
    "RequestingPhysician": "X", "RequestingService": "X", "ResponsibleOrganization": "X",
    "ResponsiblePerson": "X", "ScheduledProcedureStepDescription": "X", "ScheduledProcedureStepID": "X",
    "SeriesDate": "X/D", "SeriesDescription": "X", "SeriesInstanceUID": "U", "SeriesTime": "X/D",
    "ServiceEpisodeDescription": "X", "ServiceEpisodeID": "X", "SmokingStatus": "X", "SOPInstanceUID": "U",
    "SourceImageSequence": "X/Z/U*", "SpecialNeeds": "X", "StationName": "X/Z/D", "StorageMediaFileSetUID": "U",
    "StudyComments": "X", "StudyDate": "Z", "StudyDescription": "X", "StudyID": "Z", "StudyInstanceUID": "U",
    "StudyTime": "Z", "SynchronizationFrameOfReferenceUID": "U", "TimezoneOffsetFromUTC": "X",
    "UID": "U", "VerifyingObserverName": "D", "VisitComments": "X",
    # devices, people, signatures, specimens, free text and dates in content items
    "AttributeModificationDateTime": "X/D", "CertifiedTimestamp": "X", "CommentsOnThePerformedProcedureStep": "X",
    "ConsultingPhysicianIdentificationSequence": "X", "ConsultingPhysicianName": "X", "ContainerComponentID": "X",
    "ContainerDescription": "X", "ContextGroupExtensionCreatorUID": "U", "ContributionDateTime": "X/D",
    "Date": "X", "DateOfInstallation": "X", "DateOfLastCalibration": "X", "DateOfManufacture": "X",
    "DateTime": "X", "DeviceAlternateIdentifier": "X", "DeviceLabel": "X", "DigitalSignatureDateTime": "X",
    "DigitalSignatureUID": "X", "EthnicGroupCodeSequence": "X", "InstanceCoercionDateTime": "X",
    "LongDeviceDescription": "X", "ManufacturerDeviceIdentifier": "X", "ObservationDateTime": "X",
    "PatientAlternativeCalendar": "X", "PatientBirthDateInAlternativeCalendar": "X",
    "PatientDeathDateInAlternativeCalendar": "X", "PersonAddress": "X", "PersonIdentificationCodeSequence": "D",
    "PersonName": "D", "PersonTelecomInformation": "X", "PersonTelephoneNumbers": "X",
    "ReasonForPerformedProcedureCodeSequence": "X", "ReasonForRequestedProcedureCodeSequence": "X",
    "ReferencedPatientPhotoSequence": "X", "RequestingServiceCodeSequence": "X", "RouteOfAdmissions": "X",
    "SeriesDescriptionCodeSequence": "X", "SourceEndDateTime": "X", "SourceStartDateTime": "X",
    "SpecimenDetailedDescription": "X", "SpecimenShortDescription": "X", "SpecimenUID": "U",
    "StorageMediaFileSetID": "X", "TextValue": "X", "Time": "X", "TimeOfLastCalibration": "X",
    "UniqueDeviceIdentifier": "X",
}

#: what a minimal source keeps verbatim: geometry and pixel description (none of these is in Table E.1-1)
GEOMETRY_KEYWORDS = ("SOPClassUID", "Modality", "Rows", "Columns", "NumberOfFrames", "PixelSpacing",
                     "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness", "SpacingBetweenSlices",
                     "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                     "PixelRepresentation", "LossyImageCompression", "LossyImageCompressionRatio",
                     "LossyImageCompressionMethod")
#: enhanced multi-frame sources: functional-group items kept, each with only these attributes
FUNCTIONAL_GROUPS_KEEP = {"PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
                          "PlaneOrientationSequence": ("ImageOrientationPatient",),
                          "PlanePositionSequence": ("ImagePositionPatient",)}
#: identity attributes a minimal source carries and what replaces them: "pseudonym" (D), "" (Z: Type 2, empty),
#: "uid" (U: key-derived UID), "date" (shifted by the key's patient shift), "time" (000000)
IDENTITY_ACTIONS = {"PatientName": "pseudonym", "PatientID": "pseudonym", "PatientBirthDate": "", "PatientSex": "",
                    "AccessionNumber": "", "StudyID": "", "ReferringPhysicianName": "", "StudyDate": "date",
                    "StudyTime": "time", "StudyInstanceUID": "uid", "SeriesInstanceUID": "uid",
                    "SOPInstanceUID": "uid", "FrameOfReferenceUID": "uid"}
#: PS3.16 CID 7050 codes written into DeidentificationMethodCodeSequence
PROFILE_CODES = (("113100", "Basic Application Confidentiality Profile"),
                 ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
#: attributes a writer's own object gets a date (shifted "now") or time (000000) in, by ``stamp``
OWN_DATES = ("ContentDate", "SeriesDate", "InstanceCreationDate")
OWN_TIMES = ("ContentTime", "SeriesTime", "InstanceCreationTime")
